# frozen_string_literal: true

require_relative '../webhook'

module RioClient
  module Webhook
    # A Rails controller mixin whose before_action lets only requests signed
    # by Rio reach the actions.
    #
    #   class CommentHooksController < ActionController::Base
    #     include RioClient::Webhook::ControllerHelpers
    #     skip_forgery_protection                 # Rio sends no CSRF token
    #     verify_rio_webhook only: :antispam_comment
    #     ...
    #
    # (or before_action :verify_rio_webhook!). A GET is verified over its query
    # string (where Rio puts a GET handler's payload), other methods over their
    # raw body. Unsigned, tampered or stale requests get 401
    # {"status":"error","error":"invalid webhook signature"} and the action
    # does not run. The secret is #rio_webhook_secret:
    # ENV['RIO_WEBHOOK_SECRET'] unless the controller overrides it (e.g. with
    # Rails.application.credentials).
    module ControllerHelpers
      def self.included(base)
        base.extend(ClassMethods)
      end

      # Class-level sugar for the before_action.
      module ClassMethods
        def verify_rio_webhook(**options)
          before_action(:verify_rio_webhook!, **options)
        end
      end

      # The before_action: renders 401 (which halts the chain) unless the
      # request verifies.
      def verify_rio_webhook!
        content = Webhook.signed_content(request.request_method, request.raw_post, request.query_string)
        Webhook.verify!(rio_webhook_secret, request.headers, content, tolerance: rio_webhook_tolerance)
      rescue WebhookVerificationError => e
        logger&.warn("rejected webhook request: #{e.message}") if respond_to?(:logger, true)
        render json: { status: 'error', error: 'invalid webhook signature' }, status: :unauthorized
      end

      # The whsec_ secret (or an Array of secrets) requests must be signed with.
      def rio_webhook_secret
        ENV.fetch('RIO_WEBHOOK_SECRET') do
          raise ArgumentError, 'set RIO_WEBHOOK_SECRET or override rio_webhook_secret in the controller'
        end
      end

      def rio_webhook_tolerance
        DEFAULT_TOLERANCE
      end
    end
  end
end
