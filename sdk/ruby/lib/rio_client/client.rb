# frozen_string_literal: true

require 'base64'
require 'grpc'
require 'json'
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
    # retries). +root_certificates+: PEM roots for TLS DSNs (default: the
    # system's). +channel_args+: extra gRPC channel arguments.
    #
    # Raises InvalidDSN when the DSN is missing or malformed; no connection is
    # attempted.
    def initialize(positional_dsn = nil, dsn: nil, timeout: DEFAULT_TIMEOUT, retry_policy: RetryPolicy::DEFAULT,
                   root_certificates: nil, channel_args: {})
      if positional_dsn && dsn && positional_dsn != dsn
        raise ArgumentError, 'Client.new got a DSN both positionally and as dsn:; pass one'
      end

      @dsn = resolve_dsn(positional_dsn || dsn)
      raise ArgumentError, 'timeout must be a positive number of seconds' unless timeout.is_a?(Numeric) && timeout.positive?
      raise ArgumentError, 'retry_policy must be a RioClient::RetryPolicy' unless retry_policy.is_a?(RetryPolicy)

      @timeout = timeout
      @retry_policy = retry_policy
      @metadata = { 'authorization' => "Basic #{Base64.strict_encode64("#{@dsn.sender}:#{@dsn.token}")}" }.freeze
      @channel = GRPC::Core::Channel.new(@dsn.target, default_channel_args.merge(channel_args),
                                         credentials(root_certificates))
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
        # attempts about as frequent as our own retries.
        'grpc.initial_reconnect_backoff_ms' => 100,
        'grpc.min_reconnect_backoff_ms' => 100,
        'grpc.max_reconnect_backoff_ms' => 5000
      }
    end

    def credentials(root_certificates)
      return :this_channel_is_insecure unless dsn.tls?

      root_certificates ? GRPC::Core::ChannelCredentials.new(root_certificates) : GRPC::Core::ChannelCredentials.new
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
