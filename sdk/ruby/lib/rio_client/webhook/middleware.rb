# frozen_string_literal: true

require 'json'
require_relative '../webhook'

module RioClient
  module Webhook
    # Rack middleware that lets only requests signed by Rio reach the app.
    #
    #   # config.ru
    #   use RioClient::Webhook::Middleware, secret: ENV.fetch('RIO_WEBHOOK_SECRET'), path: '/webhook'
    #   run MyApp
    #
    # Requests under +path+ (a String prefix or a Regexp; every request when
    # nil) that are unsigned, signed with another secret or older than
    # +tolerance+ get 401 {"status":"error","error":"invalid webhook signature"};
    # why goes to +logger+ (or env['rack.logger'] / env['rack.errors']). The
    # body is rewound for the app. Verified requests carry the message id in
    # env['rio.webhook_id'].
    class Middleware
      UNAUTHORIZED_BODY = JSON.generate(status: 'error', error: 'invalid webhook signature').freeze

      def initialize(app, secret: ENV.fetch('RIO_WEBHOOK_SECRET', nil), path: nil, tolerance: DEFAULT_TOLERANCE,
                     logger: nil)
        raise ArgumentError, 'RioClient::Webhook::Middleware needs secret: (or RIO_WEBHOOK_SECRET)' \
          if secret.nil? || (secret.respond_to?(:empty?) && secret.empty?)

        @app = app
        @secret = secret
        @path = path
        @tolerance = tolerance
        @logger = logger
      end

      def call(env)
        return @app.call(env) unless guarded?(env['PATH_INFO'].to_s)

        begin
          Webhook.verify!(@secret, env, read_body(env), tolerance: @tolerance)
        rescue WebhookVerificationError => e
          log(env, "rejected webhook request to #{env['PATH_INFO']}: #{e.message}")
          return [401, { 'content-type' => 'application/json' }, [UNAUTHORIZED_BODY]]
        end
        env['rio.webhook_id'] = env['HTTP_WEBHOOK_ID']
        @app.call(env)
      end

      private

      def guarded?(path_info)
        case @path
        when nil then true
        when Regexp then @path.match?(path_info)
        else path_info == @path || path_info.start_with?("#{@path.chomp('/')}/")
        end
      end

      def read_body(env)
        input = env['rack.input']
        return '' unless input

        input.rewind if input.respond_to?(:rewind)
        body = input.read.to_s
        input.rewind if input.respond_to?(:rewind)
        body
      end

      def log(env, message)
        logger = @logger || env['rack.logger']
        if logger
          logger.warn(message)
        elsif env['rack.errors']
          env['rack.errors'].puts(message)
        end
      end
    end
  end
end
