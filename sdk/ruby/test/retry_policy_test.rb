# frozen_string_literal: true

require 'test_helper'

# The retry policy's arithmetic.
class RetryPolicyTest < Minitest::Test
  CODES = GRPC::Core::StatusCodes

  def test_backoff_grows_exponentially_up_to_the_maximum
    policy = RioClient::RetryPolicy.new(initial_backoff: 0.1, multiplier: 2, max_backoff: 1.0, jitter: 0)
    (1..6).zip([0.1, 0.2, 0.4, 0.8, 1.0, 1.0]).each do |n, expected|
      assert_in_delta expected, policy.backoff(n), 1e-9
    end
  end

  def test_jitter_stays_within_its_bounds
    policy = RioClient::RetryPolicy.new(initial_backoff: 1.0, jitter: 0.2)
    assert_in_delta 0.8, policy.backoff(1, rand: 0.0), 1e-9
    assert_in_delta 1.2, policy.backoff(1, rand: 1.0), 1e-9
    samples = Array.new(200) { policy.backoff(1) }
    assert(samples.all? { |s| s.between?(0.8, 1.2) })
    assert_operator samples.uniq.size, :>, 1
  end

  def test_only_transient_codes_are_retried_and_attempts_are_bounded
    policy = RioClient::RetryPolicy::DEFAULT
    assert_equal 5, policy.max_attempts
    assert policy.retry?(CODES::UNAVAILABLE, 1)
    assert policy.retry?(CODES::DEADLINE_EXCEEDED, 4)
    refute policy.retry?(CODES::UNAVAILABLE, 5)
    [CODES::UNAUTHENTICATED, CODES::INVALID_ARGUMENT, CODES::PERMISSION_DENIED, CODES::INTERNAL].each do |code|
      refute policy.retry?(code, 1)
    end
    refute RioClient::RetryPolicy::NONE.retry?(CODES::UNAVAILABLE, 1)
  end

  def test_nonsense_policies_are_refused
    [{ max_attempts: 0 }, { initial_backoff: -1 }, { multiplier: 0.5 }, { jitter: 2 }].each do |opts|
      assert_raises(ArgumentError, opts.inspect) { RioClient::RetryPolicy.new(**opts) }
    end
  end
end
