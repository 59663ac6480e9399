# frozen_string_literal: true

require 'base64'
require 'openssl'
require_relative 'errors'

module RioClient
  # Verifying the requests Rio sends to webhooks (Standard Webhooks).
  #
  # Each request carries webhook-id, webhook-timestamp and
  # "webhook-signature: v1,<base64 HMAC-SHA256(key, id.timestamp.body)> ..."
  # (one entry per valid secret, two while a secret rotation overlaps), where
  # key is the base64-decoded part of the handler's whsec_ secret.
  #
  #   RioClient::Webhook.verify(secret, request.headers, request.raw_post)  # => true / false
  #   RioClient::Webhook.verify!(secret, env, body)  # raises WebhookVerificationError saying why
  #
  # Verify the raw body, before any parsing. Receivers should also dedupe on
  # webhook-id: it stays the same across retries.
  module Webhook
    DEFAULT_TOLERANCE = 300 # seconds, either side of now
    PREFIX = 'whsec_'

    module_function

    # True when the request is signed with +secret+ (or any of an Array of
    # secrets) and its timestamp is within +tolerance+ seconds of now.
    # +headers+: a Hash (any case), a Rack env (HTTP_WEBHOOK_ID) or Rails'
    # request.headers; +body+: the raw body. Raises ArgumentError for a secret
    # that is not whsec_ + base64 (a setup error, not a bad request).
    def verify(secret, headers, body, tolerance: DEFAULT_TOLERANCE, now: nil)
      verify!(secret, headers, body, tolerance: tolerance, now: now)
      true
    rescue WebhookVerificationError
      false
    end

    # Like verify, but raises WebhookVerificationError saying why instead of
    # returning false.
    def verify!(secret, headers, body, tolerance: DEFAULT_TOLERANCE, now: nil)
      keys = Array(secret).map { |s| key(s) }
      raise ArgumentError, 'no webhook secret given' if keys.empty?

      msg_id = header(headers, 'webhook-id')
      timestamp = header(headers, 'webhook-timestamp')
      signatures = header(headers, 'webhook-signature')
      { 'webhook-id' => msg_id, 'webhook-timestamp' => timestamp, 'webhook-signature' => signatures }.each do |name, v|
        raise WebhookVerificationError, "missing #{name} header" if v.nil? || v.empty?
      end
      timestamp = timestamp.strip
      raise WebhookVerificationError, 'webhook-timestamp is not unix seconds' unless /\A[0-9]+\z/.match?(timestamp)

      current = now || Time.now.to_f
      if (current - Integer(timestamp, 10)).abs > tolerance
        raise WebhookVerificationError,
              "webhook-timestamp is more than #{tolerance} seconds from now (replayed, or a clock is off)"
      end

      body = body.to_s.b
      expected = keys.map { |k| signature(k, msg_id, timestamp, body) }
      matched = false
      # No early exit: every entry is compared against every key.
      signatures.split.each do |entry|
        version, value = entry.split(',', 2)
        next unless version == 'v1' && value

        expected.each do |e|
          matched |= value.bytesize == e.bytesize && OpenSSL.fixed_length_secure_compare(e, value)
        end
      end
      raise WebhookVerificationError, 'no webhook-signature entry matches the secret' unless matched

      nil
    end

    # The "v1,<signature>" entry Rio sends for this request (useful to test a
    # receiver).
    def sign(secret, msg_id, timestamp, body)
      "v1,#{signature(key(secret), msg_id, timestamp.to_s, body.to_s.b)}"
    end

    def key(secret)
      raise ArgumentError, "a webhook secret is a String like 'whsec_...', not #{secret.class}" unless secret.is_a?(String)

      encoded = secret.start_with?(PREFIX) ? secret[PREFIX.size..] : secret
      decoded = begin
        Base64.strict_decode64(encoded)
      rescue ArgumentError
        raise ArgumentError, "the webhook secret is not base64 after 'whsec_'"
      end
      raise ArgumentError, 'the webhook secret is empty' if decoded.empty?

      decoded
    end

    def signature(key, msg_id, timestamp, body)
      Base64.strict_encode64(OpenSSL::HMAC.digest('SHA256', key, "#{msg_id}.#{timestamp}.".b + body))
    end

    # Looks +name+ up in a Hash (case-insensitively), a Rack env or Rails'
    # ActionDispatch::Http::Headers.
    def header(headers, name)
      headers = headers.env if headers.respond_to?(:env) # ActionDispatch::Http::Headers
      rack_name = "HTTP_#{name.upcase.tr('-', '_')}"
      value = headers[name] || headers[rack_name]
      if value.nil?
        wanted = name.downcase
        headers.each do |k, v|
          if k.to_s.downcase == wanted
            value = v
            break
          end
        end
      end
      value.is_a?(Array) ? value.join(', ') : value&.to_s
    end
    private_class_method :key, :signature, :header
  end
end
