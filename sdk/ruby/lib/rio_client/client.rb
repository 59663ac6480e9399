# frozen_string_literal: true

require 'base64'
require 'grpc'
require 'json'
require 'pathname'
require 'securerandom'

require_relative 'dsn'
require_relative 'errors'
require_relative 'retry_policy'
require_relative 'version'
require_relative 'v1/emit_services_pb'

module RioClient
  # What Rio answered to an emit: the message's id (the webhook-id receivers
  # get), how many deliveries were created, whether the idempotency key
  # matched an earlier message (then nothing new was created), and the key
  # the emit was sent with.
  EmitResult = Struct.new(:message_id, :handlers, :duplicate, :idempotency_key, keyword_init: true) do
    alias_method :duplicate?, :duplicate
  end

  # One event of an emit_batch; [event, payload] and [event, payload, key]
  # arrays and {event:, payload:, idempotency_key:} hashes work as well.
  Event = Struct.new(:event, :payload, :idempotency_key)

  # Emits events into the project of one sender DSN.
  #
  #   client = RioClient::Client.new(dsn: 'rio://comments-app:TOKEN@127.0.0.1:50051/comments')
  #   result = client.emit('comment-published', ip: '127.0.0.1', content: 'I am a spammer')
  #
  # A Client is safe to share between threads; make one per process and
  # reuse it (it holds one gRPC channel).
  class Client
    DEFAULT_TIMEOUT = 10.0
    ENV_DSN = 'RIO_DSN'

    attr_reader :dsn

    # +dsn+ (positional or keyword): rio://SENDER:TOKEN@HOST:PORT/PROJECT, or
    # rios://, http://, https:// (see DSN); ENV['RIO_DSN'] when not given.
    # +timeout+: seconds each attempt may take. +retry_policy+: RetryPolicy
    # for UNAVAILABLE and DEADLINE_EXCEEDED (RetryPolicy::NONE disables
    # retries). +channel_args+: extra gRPC channel arguments.
    #
    # TLS (rios:// and https:// DSNs): +root_certificates+ are the roots to
    # trust (default: the file named by ENV['RIO_TLS_CA'], else the system's);
    # +tls_server_name+ the name the server's certificate must carry when it
    # is not the DSN's host (default: ENV['RIO_TLS_SERVER_NAME']);
    # +client_certificate+ and +client_key+ this client's certificate chain
    # and key for servers that require client certificates (mutual TLS; both
    # or neither; default: the files named by ENV['RIO_TLS_CLIENT_CERT'] and
    # ENV['RIO_TLS_CLIENT_KEY']). Each PEM setting is PEM text (a String) or
    # a Pathname of a PEM file.
    #
    # Raises InvalidDSN when the DSN is missing or malformed, ArgumentError
    # for TLS settings that cannot be used (an unreadable or non-PEM file, a
    # certificate without its key, any TLS setting with a plaintext DSN); no
    # connection is attempted. A server whose certificate is not trusted or
    # not for the expected name, or that refuses the client's certificate,
    # makes calls raise Unavailable.
    def initialize(positional_dsn = nil, dsn: nil, timeout: DEFAULT_TIMEOUT, retry_policy: RetryPolicy::DEFAULT,
                   root_certificates: nil, tls_server_name: nil, client_certificate: nil, client_key: nil,
                   channel_args: {})
      if positional_dsn && dsn && positional_dsn != dsn
        raise ArgumentError, 'Client.new got a DSN both positionally and as dsn:; pass one'
      end

      @dsn = resolve_dsn(positional_dsn || dsn)
      raise ArgumentError, 'timeout must be a positive number of seconds' unless timeout.is_a?(Numeric) && timeout.positive?
      raise ArgumentError, 'retry_policy must be a RioClient::RetryPolicy' unless retry_policy.is_a?(RetryPolicy)

      @timeout = timeout
      @retry_policy = retry_policy
      @metadata = { 'authorization' => "Basic #{Base64.strict_encode64("#{@dsn.sender}:#{@dsn.token}")}" }.freeze
      tls = resolve_tls(root_certificates, tls_server_name, client_certificate, client_key)
      args = default_channel_args
      args['grpc.ssl_target_name_override'] = tls[:server_name] if tls[:server_name]
      @channel = GRPC::Core::Channel.new(@dsn.target, args.merge(channel_args), credentials(tls))
      @stub = V1::EmitService::Stub.new(@dsn.target, nil, channel_override: @channel)
      @closed = false
      @lock = Mutex.new
    end

    def project
      dsn.project
    end

    # Emits +event+ into the DSN's project and returns an EmitResult once Rio
    # has committed the message and one delivery per enabled handler.
    #
    # The payload is a Hash (sent as JSON) or JSON text (a String, sent byte
    # for byte); keyword arguments other than idempotency_key: and timeout:
    # are the payload too:
    #
    #   client.emit('comment-published', ip: '127.0.0.1', content: 'I am a spammer')
    #   client.emit('comment-published', { 'ip' => '127.0.0.1' }, idempotency_key: "comment-#{id}")
    #
    # Every attempt carries the same idempotency key (a new UUID unless given),
    # so a retried emit whose first reply was lost returns the first message
    # with duplicate: true instead of creating a second one.
    #
    # Raises the RioClient::Error subclass for the call's gRPC code, e.g.
    # Unauthenticated (wrong token), PermissionDenied (another project's
    # sender), InvalidArgument, Unavailable / DeadlineExceeded once retries are
    # exhausted; ArgumentError for a payload that is neither a Hash nor a String.
    def emit(event, payload = nil, idempotency_key: nil, timeout: nil, **fields)
      unless fields.empty?
        raise ArgumentError, 'pass the payload as a Hash or as keyword arguments, not both' unless payload.nil?

        payload = fields
      end
      request = emit_request(event, payload, idempotency_key)
      response = call(:emit, request, timeout)
      result(response, request)
    end

    # Emits several events in one transaction (at most 1000) and returns their
    # EmitResults in order. Each event is an Event, an [event, payload] or
    # [event, payload, idempotency_key] array, or a Hash with those keys.
    def emit_batch(events, timeout: nil)
      requests = events.map { |e| emit_request(*batch_item(e)) }
      response = call(:emit_batch, V1::EmitBatchRequest.new(events: requests), timeout)
      response.results.zip(requests).map { |r, req| result(r, req) }
    end

    # Closes the channel; later calls raise ClientClosed.
    def close
      @lock.synchronize do
        next if @closed

        @closed = true
        @channel.close
      end
      nil
    end

    def closed?
      @closed
    end

    def inspect
      "#<RioClient::Client #{dsn}>"
    end
    alias to_s inspect

    private

    def resolve_dsn(text)
      if text.nil?
        text = ENV.fetch(ENV_DSN, nil)
        if text.nil? || text.empty?
          raise InvalidDSN, "no DSN: pass Client.new(dsn: 'rio://SENDER:TOKEN@HOST:PORT/PROJECT') or set #{ENV_DSN}"
        end
      end
      DSN.parse(text)
    end

    def default_channel_args
      {
        'grpc.primary_user_agent' => "rio-ruby/#{VERSION}",
        # gRPC waits up to 2 minutes before reconnecting after a failure by
        # default, which would make every retry fail fast: keep reconnection
        # attempts about as frequent as our own retries. The minimum backoff
        # stays at its default: gRPC also uses it as the time one connection
        # attempt (TCP and TLS handshake) may take.
        'grpc.initial_reconnect_backoff_ms' => 100,
        'grpc.max_reconnect_backoff_ms' => 5000
      }
    end

    ENV_TLS_CA = 'RIO_TLS_CA'
    ENV_TLS_SERVER_NAME = 'RIO_TLS_SERVER_NAME'
    ENV_TLS_CLIENT_CERT = 'RIO_TLS_CLIENT_CERT'
    ENV_TLS_CLIENT_KEY = 'RIO_TLS_CLIENT_KEY'

    # The TLS settings from the arguments, each else from its RIO_TLS_*
    # variable: { roots:, certificate:, key:, server_name: } (nil: default).
    def resolve_tls(root_certificates, tls_server_name, client_certificate, client_key)
      tls = {
        roots: read_pem(root_certificates, 'root_certificates', ENV_TLS_CA),
        certificate: read_pem(client_certificate, 'client_certificate', ENV_TLS_CLIENT_CERT),
        key: read_pem(client_key, 'client_key', ENV_TLS_CLIENT_KEY),
        server_name: [tls_server_name, ENV.fetch(ENV_TLS_SERVER_NAME, nil)].find { |n| n && !n.empty? }
      }
      if tls[:certificate].nil? != tls[:key].nil?
        raise ArgumentError, 'a client certificate needs its private key and the reverse: pass both ' \
                             'client_certificate: and client_key: (or set RIO_TLS_CLIENT_CERT and ' \
                             'RIO_TLS_CLIENT_KEY), or neither'
      end
      if tls.values.any? && !dsn.tls?
        raise ArgumentError, 'TLS settings (root certificates, server name or client certificate, given or ' \
                             "from RIO_TLS_*) need a TLS DSN, but '#{dsn}' is plaintext: use rios://"
      end
      tls
    end

    # +value+ (PEM text, or a Pathname), else the file named by ENV[variable].
    def read_pem(value, argument, variable)
      source = argument
      if value.nil?
        path = ENV.fetch(variable, nil)
        return nil if path.nil? || path.empty?

        value = Pathname.new(path)
        source = "#{variable}=#{path}"
      end
      if value.is_a?(Pathname)
        source = "#{argument}=#{value}" if source == argument
        begin
          value = File.binread(value)
        rescue SystemCallError => e
          raise ArgumentError, "#{source}: cannot read the file: #{e.message.sub(/ @ .*/, '')}"
        end
      end
      raise ArgumentError, "#{argument} must be PEM text (a String) or a Pathname, not #{value.class}" \
        unless value.is_a?(String)
      unless value.include?('-----BEGIN ')
        raise ArgumentError, "#{source} is not PEM (no -----BEGIN line; pass a Pathname for a file)"
      end

      value
    end

    def credentials(tls)
      return :this_channel_is_insecure unless dsn.tls?

      GRPC::Core::ChannelCredentials.new(tls[:roots], tls[:key], tls[:certificate])
    end

    def emit_request(event, payload, idempotency_key)
      raise ArgumentError, "event must be a String, not #{event.class}" unless event.is_a?(String)

      V1::EmitRequest.new(project: dsn.project, event: event, payload_json: encode_payload(payload),
                          idempotency_key: idempotency_key || SecureRandom.uuid)
    end

    def encode_payload(payload)
      case payload
      when nil then '{}'
      when String then payload
      when Hash then JSON.generate(payload)
      else
        raise ArgumentError, "payload must be a Hash or JSON text (a String), not #{payload.class}" \
          unless payload.respond_to?(:to_hash)

        JSON.generate(payload.to_hash)
      end
    end

    def batch_item(item)
      case item
      when Event then [item.event, item.payload, item.idempotency_key]
      when Array
        raise ArgumentError, "a batch event array is [event, payload(, key)], got #{item.inspect}" \
          unless (2..3).cover?(item.size)

        [item[0], item[1], item[2]]
      when Hash
        h = item.transform_keys(&:to_sym)
        unknown = h.keys - %i[event payload idempotency_key]
        raise ArgumentError, "a batch event Hash has the keys event, payload and idempotency_key; got #{item.keys}" \
          unless unknown.empty? && h.key?(:event)

        [h[:event], h[:payload], h[:idempotency_key]]
      else
        raise ArgumentError, "batch events are RioClient::Event, [event, payload] or a Hash; got #{item.inspect}"
      end
    end

    def result(response, request)
      EmitResult.new(message_id: response.message_id, handlers: response.handlers,
                     duplicate: response.duplicate, idempotency_key: request.idempotency_key)
    end

    # Every RPC goes through here: credentials, a deadline per attempt,
    # retries with backoff, and gRPC errors turned into RioClient::Errors.
    def call(method, request, timeout)
      raise ClientClosed, 'this RioClient::Client is closed' if @closed

      timeout ||= @timeout
      attempt = 0
      begin
        attempt += 1
        @stub.public_send(method, request, metadata: @metadata, deadline: Time.now + timeout)
      rescue GRPC::BadStatus => e
        if @retry_policy.retry?(e.code, attempt)
          sleep(@retry_policy.backoff(attempt))
          retry
        end
        raise RioClient.error_from_grpc(e, attempts: attempt)
      rescue RuntimeError => e
        # grpc raises a plain RuntimeError for calls on a closed channel.
        raise ClientClosed, 'this RioClient::Client is closed' if @closed

        raise e
      end
    end
  end
end
