# frozen_string_literal: true

require 'grpc'

module RioClient
  # Exponential backoff with jitter for transient failures.
  #
  # A call is tried at most +max_attempts+ times. Before retry n (1, 2, ...)
  # the client waits min(max_backoff, initial_backoff * multiplier**(n - 1))
  # seconds, scaled by a random factor in [1 - jitter, 1 + jitter].
  #
  # Only +codes+ are retried: UNAVAILABLE and DEADLINE_EXCEEDED. Emits are
  # safe to retry because every attempt of one emit carries the same
  # idempotency key.
  class RetryPolicy
    DEFAULT_CODES = [GRPC::Core::StatusCodes::UNAVAILABLE, GRPC::Core::StatusCodes::DEADLINE_EXCEEDED].freeze

    attr_reader :max_attempts, :initial_backoff, :max_backoff, :multiplier, :jitter, :codes

    def initialize(max_attempts: 5, initial_backoff: 0.1, max_backoff: 5.0, multiplier: 2.0, jitter: 0.2,
                   codes: DEFAULT_CODES)
      raise ArgumentError, 'max_attempts must be at least 1' unless max_attempts.is_a?(Integer) && max_attempts >= 1
      raise ArgumentError, 'backoffs may not be negative' if initial_backoff.negative? || max_backoff.negative?
      raise ArgumentError, 'multiplier must be at least 1' if multiplier < 1
      raise ArgumentError, 'jitter must be between 0 and 1' unless (0..1).cover?(jitter)

      @max_attempts = max_attempts
      @initial_backoff = initial_backoff
      @max_backoff = max_backoff
      @multiplier = multiplier
      @jitter = jitter
      @codes = codes.dup.freeze
      freeze
    end

    # Whether a call whose attempt number +attempt+ failed with +code+ gets
    # another attempt.
    def retry?(code, attempt)
      codes.include?(code) && attempt < max_attempts
    end

    # Seconds to wait before retry number +retry_number+ (1-based).
    def backoff(retry_number, rand: Random.rand)
      base = [max_backoff, initial_backoff * (multiplier**(retry_number - 1))].min
      base * (1 - jitter + (2 * jitter * rand))
    end

    DEFAULT = new
    NONE = new(max_attempts: 1)
  end
end
