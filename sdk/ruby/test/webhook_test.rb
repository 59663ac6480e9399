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
    ['', ' ', 'abc', '1614265330.5', '-1614265330', '+1614265330', "1614265330\nx", '1e9', '0x5f', '١٦١',
     '9' * 21, '9' * 400, '9' * 5000, '1' * 100_000, "\xFF1614265330", "1614265330\xFF".b].each do |ts|
      refute verify(SECRET, headers(timestamp: ts)), ts[0, 30].inspect
      error = assert_raises(RioClient::WebhookVerificationError, ts[0, 30].inspect) do
        RioClient::Webhook.verify!(SECRET, headers(timestamp: ts), BODY, now: TIMESTAMP)
      end
      assert_match(/webhook-timestamp/, error.message)
    end
  end

  def test_far_timestamps_are_stale_not_errors
    %w[0 1 99999999999999999999 00000000001614265330].each do |ts|
      error = assert_raises(RioClient::WebhookVerificationError, ts) do
        RioClient::Webhook.verify!(SECRET, headers(timestamp: ts), BODY, now: TIMESTAMP + 3600)
      end
      assert_match(/more than 300 seconds/, error.message)
    end
    assert verify(SECRET, headers(timestamp: " #{TIMESTAMP} "))
  end

  # Header values that are not valid UTF-8 (a Hash built by hand, a
  # framework that tags bytes as UTF-8) fail verification, not with
  # ArgumentError from a regexp or split.
  def test_header_values_that_are_not_utf8_are_rejected
    bad = "\xFF\xFE".dup.force_encoding('UTF-8')
    [headers(msg_id: "msg_#{bad}"), headers(signature: "#{bad} v1,#{bad}"),
     headers(timestamp: "#{TIMESTAMP}#{bad}")].each do |hdrs|
      refute verify(SECRET, hdrs)
      assert_raises(RioClient::WebhookVerificationError) do
        RioClient::Webhook.verify!(SECRET, hdrs, BODY, now: TIMESTAMP)
      end
    end
    # The id's bytes are what is signed, whatever their encoding says.
    id = "msg_#{bad}"
    signature = RioClient::Webhook.sign(SECRET, id, TIMESTAMP, BODY)
    assert verify(SECRET, headers(msg_id: id.b, signature: signature))
  end

  # A GET handler gets the payload in the query string and an empty body: the
  # signature covers the query string, the bytes after '?' as sent.
  QUERY = 'static=1&content=I+am+a+spammer&n=2'

  def test_a_get_request_is_verified_over_its_query_string
    signed = headers(signature: RioClient::Webhook.sign(SECRET, MSG_ID, TIMESTAMP, QUERY))
    assert verify(SECRET, signed, QUERY)
    assert verify(SECRET, signed, RioClient::Webhook.signed_content('GET', '', QUERY))
    refute verify(SECRET, signed, '')
  end

  def test_a_tampered_query_string_is_rejected
    signed = headers(signature: RioClient::Webhook.sign(SECRET, MSG_ID, TIMESTAMP, QUERY))
    ['static=1&content=I+am+a+friend&n=2', "#{QUERY}&admin=1", 'content=I+am+a+spammer&n=2',
     'static=1&content=I%20am%20a%20spammer&n=2', ''].each do |tampered|
      error = assert_raises(RioClient::WebhookVerificationError, tampered) do
        RioClient::Webhook.verify!(SECRET, signed, tampered, now: TIMESTAMP)
      end
      assert_equal 'no webhook-signature entry matches the secret', error.message
    end
  end

  def test_signed_content_is_the_query_string_for_get_only
    assert_equal QUERY, RioClient::Webhook.signed_content('GET', '', QUERY)
    assert_equal QUERY, RioClient::Webhook.signed_content(:get, nil, QUERY)
    assert_equal BODY, RioClient::Webhook.signed_content('POST', BODY, 'x=1')
    assert_equal BODY, RioClient::Webhook.signed_content('PUT', BODY, nil)
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
