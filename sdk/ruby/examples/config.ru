# frozen_string_literal: true

# The seed's receiver as a Rack app, with Rio's signature checked first:
#
#   RIO_WEBHOOK_SECRET=whsec_... rackup -o 127.0.0.1 -p 5000 sdk/ruby/examples/config.ru
#
# Register http://127.0.0.1:5000/webhook/comment/antispam as a (FORM) handler
# of comment-published and start this with the "secret" of the reply.
# Unsigned requests get 401 and never reach the app.
begin
  require 'rio_client'
rescue LoadError # running from the source tree, gem not installed
  require File.expand_path('../lib/rio_client', __dir__)
end
require File.expand_path('antispam_app', __dir__)

use RioClient::Webhook::Middleware, secret: ENV.fetch('RIO_WEBHOOK_SECRET'), path: '/webhook'
run AntispamApp
