# frozen_string_literal: true

require 'test_helper'

# RioClient::Webhook against the Standard Webhooks test vector and every way a
# request can fail to verify.
class WebhookTest < Minitest::Test
  SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
  MSG_ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek'
  TIMESTAMP = 1_614_265_330
  BODY = '{"test": 2432232314}'
  SIGNATURE = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
  OTHER_SECRET = 'whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo='

  def headers(signature: SIGNATURE, msg_id: MSG_ID, timestamp: TIMESTAMP)
    { 'webhook-id' => msg_id, 'webhook-timestamp' => timestamp.to_s, 'webhook-signature' => signature }
  end

  def verify(secret = SECRET, hdrs = headers, body = BODY, **opts)
    RioClient::Webhook.verify(secret, hdrs, body, now: TIMESTAMP, **opts)
  end

  def test_standard_webhooks_vector_verifies
    assert verify
    assert_nil RioClient::Webhook.verify!(SECRET, headers, BODY, now: TIMESTAMP)
  end

  def test_sign_reproduces_the_vector
    assert_equal SIGNATURE, RioClient::Webhook.sign(SECRET, MSG_ID, TIMESTAMP, BODY)
    assert_equal SIGNATURE, RioClient::Webhook.sign(SECRET, MSG_ID, TIMESTAMP.to_s, BODY.b)
  end

  def test_secret_without_prefix_verifies
    assert verify(SECRET.delete_prefix('whsec_'))
  end

  def test_tampered_body_is_rejected
    refute verify(SECRET, headers, '{"test": 2432232315}')
    error = assert_raises(RioClient::WebhookVerificationError) do
      RioClient::Webhook.verify!(SECRET, headers, "#{BODY} ", now: TIMESTAMP)
    end
    assert_equal 'no webhook-signature entry matches the secret', error.message
  end

  def test_tampered_id_is_rejected
    refute verify(SECRET, headers(msg_id: 'msg_other'))
  end

  def test_old_timestamp_is_rejected
    assert verify(now: TIMESTAMP + 300)
    refute verify(now: TIMESTAMP + 301)
    error = assert_raises(RioClient::WebhookVerificationError) do
      RioClient::Webhook.verify!(SECRET, headers, BODY, now: TIMESTAMP + 3600)
    end
    assert_match(/more than 300 seconds/, error.message)
  end

  def test_future_timestamp_is_rejected
    refute verify(now: TIMESTAMP - 301)
  end

  def test_tolerance_is_configurable
    assert verify(now: TIMESTAMP + 3600, tolerance: 3600)
  end

  def test_current_time_is_the_default
    refute RioClient::Webhook.verify(SECRET, headers, BODY)
  end

  def test_wrong_secret_is_rejected
    refute verify(OTHER_SECRET)
  end

  def test_every_v1_entry_is_checked
    other = RioClient::Webhook.sign(OTHER_SECRET, MSG_ID, TIMESTAMP, BODY)
    ["#{other} #{SIGNATURE}", "#{SIGNATURE} #{other}", "v2,abc #{other}  #{SIGNATURE}"].each do |signature|
      assert verify(SECRET, headers(signature: signature)), signature
    end
    refute verify(SECRET, headers(signature: SIGNATURE.sub('v1,', 'v2,')))
    refute verify(SECRET, headers(signature: other))
    refute verify(SECRET, headers(signature: 'v1,short'))
  end

  def test_several_secrets_are_accepted
    assert verify([OTHER_SECRET, SECRET])
    refute verify([OTHER_SECRET])
  end

  def test_missing_headers_are_rejected
    %w[webhook-id webhook-timestamp webhook-signature].each do |name|
      hdrs = headers.reject { |k, _| k == name }
      error = assert_raises(RioClient::WebhookVerificationError) do
        RioClient::Webhook.verify!(SECRET, hdrs, BODY, now: TIMESTAMP)
      end
      assert_equal "missing #{name} header", error.message
    end
  end

  def test_malformed_timestamps_are_rejected
    ['', 'abc', '1614265330.5', '-1614265330', "1614265330\nx"].each do |ts|
      refute verify(SECRET, headers(timestamp: ts)), ts.inspect
    end
  end

  def test_header_lookup_is_case_insensitive_and_takes_rack_envs
    title = headers.transform_keys { |k| k.split('-').map(&:capitalize).join('-') }
    assert verify(SECRET, title)
    env = headers.transform_keys { |k| "HTTP_#{k.upcase.tr('-', '_')}" }
    assert verify(SECRET, env)
  end

  def test_malformed_secret_is_a_setup_error
    assert_raises(ArgumentError) { verify('whsec_not*base64') }
    assert_raises(ArgumentError) { verify([]) }
  end

  def test_verification_error_is_a_rio_error
    assert_operator RioClient::WebhookVerificationError, :<, RioClient::Error
  end
end
