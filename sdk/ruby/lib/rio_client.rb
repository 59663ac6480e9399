# frozen_string_literal: true

# Rio's Ruby SDK: emit events into a Rio project, and verify the webhooks Rio
# calls.
#
#   require 'rio_client'
#   client = RioClient::Client.new(dsn: 'rio://comments-app:TOKEN@127.0.0.1:50051/comments')
#   client.emit('comment-published', ip: '127.0.0.1', content: 'I am a spammer')
#
# RioClient::Webhook verifies signatures; RioClient::Webhook::Middleware
# guards Rack apps, RioClient::Webhook::ControllerHelpers Rails controllers.
# The generated rio.v1 messages and stubs are RioClient::V1 (require
# 'rio_client/v1/project_services_pb' etc. for the admin services).
require_relative 'rio_client/version'
require_relative 'rio_client/errors'
require_relative 'rio_client/dsn'
require_relative 'rio_client/retry_policy'
require_relative 'rio_client/client'
require_relative 'rio_client/webhook'
require_relative 'rio_client/webhook/middleware'
require_relative 'rio_client/webhook/controller_helpers'
