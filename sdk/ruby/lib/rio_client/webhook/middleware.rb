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
    # env['rio.webhook_id']. A GET is verified over its query string (where
    # Rio puts a GET handler's payload), other methods over their body.
    #
    # +path+ is matched against PATH_INFO both as it came and as routers and
    # Rack::Protection::PathTraversal see it (normalized_path: %2e, %2f, %5c
    # and unreserved characters decoded, backslashes as slashes, repeated
    # slashes squeezed, dot segments resolved), so "//webhook/x",
    # "/x/../webhook/x" or "/%77ebhook/x" cannot reach a guarded app unchecked.
    class Middleware
      UNAUTHORIZED_BODY = JSON.generate(status: 'error', error: 'invalid webhook signature').freeze

      # %XX escapes a router may decode before matching: those of
      # Rack::Protection::PathTraversal ('.', '/', '\\') and of the RFC 3986
      # unreserved characters (letters, digits, '-', '.', '_', '~').
      DECODED_ESCAPE = /%(2[eEfF]|5[cC]|[46][1-9a-fA-F]|[57][0-9aA]|3[0-9]|2[dD]|5[fF]|7[eE])/.freeze

      # PATH_INFO as a router sees it after Rack::Protection::PathTraversal:
      # the escapes above decoded once, '\\' as '/', empty and '.' segments
      # dropped, '..' removing the segment before it; "/" at least, with a
      # trailing '/' kept.
      def self.normalized_path(path_info)
        decoded = path_info.to_s.b.gsub(DECODED_ESCAPE) { Regexp.last_match(1).hex.chr }.tr('\\', '/')
        parts = []
        decoded.split('/').each do |part|
          next if part.empty? || part == '.'

          part == '..' ? parts.pop : parts << part
        end
        normalized = "/#{parts.join('/')}".b
        normalized << '/' if parts.any? && %r{/\.{0,2}\z}.match?(decoded)
        normalized
      end

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
          content = if env['REQUEST_METHOD'] == 'GET'
                      env['QUERY_STRING'].to_s
                    else
                      read_body(env)
                    end
          Webhook.verify!(@secret, env, content, tolerance: @tolerance)
        rescue WebhookVerificationError => e
          log(env, "rejected webhook request to #{env['PATH_INFO']}: #{e.message}")
          return [401, { 'content-type' => 'application/json' }, [UNAUTHORIZED_BODY]]
        end
        env['rio.webhook_id'] = env['HTTP_WEBHOOK_ID']
        @app.call(env)
      end

      private

      def guarded?(path_info)
        return true if @path.nil?

        [path_info.b, self.class.normalized_path(path_info)].any? { |candidate| matches?(candidate) }
      end

      def matches?(path)
        if @path.is_a?(Regexp)
          @path.match?(path)
        else
          prefix = @path.to_s.b
          path == prefix || path.start_with?("#{prefix.chomp('/')}/".b)
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
