# frozen_string_literal: true

require 'base64'
require 'openssl'
require_relative 'errors'

module RioClient
  # Verifying the requests Rio sends to webhooks (Standard Webhooks).
  #
  # Each request carries webhook-id, webhook-timestamp and
  # "webhook-signature: v1,<base64 HMAC-SHA256(key, id.timestamp.content)> ..."
  # (one entry per valid secret, two while a secret rotation overlaps), where
  # key is the base64-decoded part of the handler's whsec_ secret and content
  # the raw body of a POST or PUT, or the raw query string of a GET (the bytes
  # after '?' as sent: a GET handler gets the payload there, and an empty body).
  #
  #   RioClient::Webhook.verify(secret, request.headers, request.raw_post)  # => true / false
  #   RioClient::Webhook.verify(secret, request.headers, request.query_string)  # a GET
  #   RioClient::Webhook.verify!(secret, env, body)  # raises WebhookVerificationError saying why
  #
  # Verify the raw bytes, before any parsing. Receivers should also dedupe on
  # webhook-id: it stays the same across retries. The Rack middleware and the
  # Rails helper pick the body or the query string themselves.
  module Webhook
    DEFAULT_TOLERANCE = 300 # seconds, either side of now
    PREFIX = 'whsec_'
    # Unix seconds have 10 digits until the year 2286; longer values are
    # refused before any arithmetic.
    MAX_TIMESTAMP_DIGITS = 20

    module_function

    # True when the request is signed with +secret+ (or any of an Array of
    # secrets) and its timestamp is within +tolerance+ seconds of now.
    # +headers+: a Hash (any case), a Rack env (HTTP_WEBHOOK_ID) or Rails'
    # request.headers; +body+: the signed content, i.e. the raw body, or for a
    # GET the raw query string (see signed_content). Raises ArgumentError for a
    # secret that is not whsec_ + base64 (a setup error, not a bad request).
    def verify(secret, headers, body, tolerance: DEFAULT_TOLERANCE, now: nil)
      verify!(secret, headers, body, tolerance: tolerance, now: now)
      true
    rescue WebhookVerificationError
      false
    end

    # Like verify, but raises WebhookVerificationError saying why instead of
    # returning false. Whatever the headers hold (any bytes, any length), a
    # request that does not verify raises WebhookVerificationError.
    def verify!(secret, headers, body, tolerance: DEFAULT_TOLERANCE, now: nil)
      keys = Array(secret).map { |s| key(s) }
      raise ArgumentError, 'no webhook secret given' if keys.empty?

      msg_id = header(headers, 'webhook-id')
      timestamp = header(headers, 'webhook-timestamp')
      signatures = header(headers, 'webhook-signature')
      { 'webhook-id' => msg_id, 'webhook-timestamp' => timestamp, 'webhook-signature' => signatures }.each do |name, v|
        raise WebhookVerificationError, "missing #{name} header" if v.nil? || v.empty?
      end
      # As bytes: a value that is not valid UTF-8 must not raise from a regexp
      # or split.
      msg_id = msg_id.b
      signatures = signatures.b
      timestamp = timestamp.b.strip
      unless /\A[0-9]+\z/.match?(timestamp) && timestamp.bytesize <= MAX_TIMESTAMP_DIGITS
        raise WebhookVerificationError, 'webhook-timestamp is not unix seconds'
      end

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
    # receiver). +body+ is the signed content: for a GET, the query string.
    def sign(secret, msg_id, timestamp, body)
      "v1,#{signature(key(secret), msg_id, timestamp.to_s, body.to_s.b)}"
    end

    # What Rio signs for a request: the raw query string for a GET (Rio sends
    # a GET handler the payload there, with an empty body), else the raw body.
    # Pass the query string undecoded, as received (Rack's QUERY_STRING,
    # Rails' request.query_string).
    def signed_content(method, body, query_string)
      method.to_s.casecmp?('GET') ? query_string.to_s : body.to_s
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
      Base64.strict_encode64(OpenSSL::HMAC.digest('SHA256', key, "#{msg_id.b}.#{timestamp}.".b + body))
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
