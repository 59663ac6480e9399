# frozen_string_literal: true

require 'test_helper'
require 'rack'
require 'rack/mock'
require 'logger'
require 'stringio'

module WebhookFixtures
  SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
  OTHER_SECRET = 'whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo='
  BODY = 'ip=127.0.0.1&content=I+am+a+spammer'

  def signed(secret: SECRET, body: BODY, timestamp: Time.now.to_i, msg_id: '6c1e1d2a')
    {
      'HTTP_WEBHOOK_ID' => msg_id,
      'HTTP_WEBHOOK_TIMESTAMP' => timestamp.to_s,
      'HTTP_WEBHOOK_SIGNATURE' => RioClient::Webhook.sign(secret, msg_id, timestamp, body)
    }
  end
end

# RioClient::Webhook::Middleware in a Rack stack.
class MiddlewareTest < Minitest::Test
  include WebhookFixtures

  def setup
    @seen = []
    @log = StringIO.new
    seen = @seen
    app = lambda do |env|
      req = Rack::Request.new(env)
      seen << [req.POST['ip'], req.POST['content'], env['rio.webhook_id']]
      [200, { 'content-type' => 'application/json' }, ['{"status":"success","retval":0}']]
    end
    @app = RioClient::Webhook::Middleware.new(app, secret: SECRET, path: '/webhook', logger: Logger.new(@log))
  end

  def post(path, env, body = BODY)
    Rack::MockRequest.new(@app).post(path, env.merge(input: body, 'CONTENT_TYPE' => 'application/x-www-form-urlencoded'))
  end

  def test_signed_request_reaches_the_app_with_its_form
    response = post('/webhook/comment/antispam', signed)
    assert_equal 200, response.status
    assert_equal [['127.0.0.1', 'I am a spammer', '6c1e1d2a']], @seen
  end

  def test_bad_requests_get_401_and_never_reach_the_app
    {
      'no webhook-signature entry matches' => [signed, BODY.sub('spammer', 'friend')],
      'entry matches the secret' => [signed(secret: OTHER_SECRET), BODY],
      'more than 300 seconds' => [signed(timestamp: Time.now.to_i - 3600), BODY],
      'missing webhook-id header' => [{}, BODY]
    }.each do |why, (env, body)|
      response = post('/webhook/comment/antispam', env, body)
      assert_equal 401, response.status, why
      assert_equal({ 'status' => 'error', 'error' => 'invalid webhook signature' }, JSON.parse(response.body))
      assert_includes @log.string, why
    end
    assert_empty @seen
  end

  def test_paths_outside_the_guarded_prefix_pass_through
    assert_equal 200, post('/health', {}).status
    assert_equal 401, post('/webhook', {}).status
    assert_equal 200, post('/webhooks-elsewhere', {}).status
  end

  def test_regexp_path_and_every_path_by_default
    inner = ->(_env) { [200, {}, ['ok']] }
    by_regexp = RioClient::Webhook::Middleware.new(inner, secret: SECRET, path: %r{\A/hooks/})
    assert_equal 401, Rack::MockRequest.new(by_regexp).post('/hooks/a', input: BODY).status
    assert_equal 200, Rack::MockRequest.new(by_regexp).post('/other', input: BODY).status
    everything = RioClient::Webhook::Middleware.new(inner, secret: [OTHER_SECRET, SECRET])
    assert_equal 401, Rack::MockRequest.new(everything).post('/other', input: BODY).status
    assert_equal 200, Rack::MockRequest.new(everything).post('/other', signed.merge(input: BODY)).status
  end

  def test_missing_secret_is_a_setup_error
    old = ENV.delete('RIO_WEBHOOK_SECRET')
    assert_raises(ArgumentError) { RioClient::Webhook::Middleware.new(->(_) {}) }
  ensure
    ENV['RIO_WEBHOOK_SECRET'] = old if old
  end

  QUERY = 'ip=127.0.0.1&content=I+am+a+spammer'

  def get(query, env)
    Rack::MockRequest.new(@app).get("/webhook/comment/antispam?#{query}", env)
  end

  # A GET handler gets the payload in the query string, signed there.
  def test_a_get_is_verified_over_its_query_string
    seen = []
    app = lambda do |env|
      req = Rack::Request.new(env)
      seen << [req.request_method, req.GET['ip'], req.GET['content']]
      [200, {}, ['ok']]
    end
    @app = RioClient::Webhook::Middleware.new(app, secret: SECRET, path: '/webhook', logger: Logger.new(@log))
    assert_equal 200, get(QUERY, signed(body: QUERY)).status
    assert_equal [['GET', '127.0.0.1', 'I am a spammer']], seen
    [QUERY.sub('spammer', 'friend'), "#{QUERY}&admin=1", 'content=I+am+a+spammer&ip=127.0.0.1', ''].each do |query|
      response = get(query, signed(body: QUERY))
      assert_equal 401, response.status, query
    end
    assert_includes @log.string, 'no webhook-signature entry matches'
    # Signed over its empty body, as Rio once did: refused.
    assert_equal 401, get(QUERY, signed(body: '')).status
    assert_equal 1, seen.size
  end

  def test_normalized_path
    {
      '' => '/',
      '/' => '/',
      '/webhook/comment' => '/webhook/comment',
      '//webhook//comment' => '/webhook/comment',
      '/x/../webhook/comment' => '/webhook/comment',
      '/./webhook/./comment' => '/webhook/comment',
      '/../../webhook' => '/webhook',
      '/%2e%2E/x/%2E%2e/webhook' => '/webhook',
      '/webhook%2Fcomment%2fa' => '/webhook/comment/a',
      '\\webhook\\comment' => '/webhook/comment',
      '/%5cwebhook%5Ccomment' => '/webhook/comment',
      '/%77eb%68%6F%4Fk/%7E%2D%5F%30' => '/webhoOk/~-_0',
      '/webhook/' => '/webhook/',
      '/webhook/.' => '/webhook/',
      '/webhook/x/..' => '/webhook/',
      # Only one round of decoding, and not of reserved or other characters.
      '/%252e%252e/webhook' => '/%252e%252e/webhook',
      '/%20webhook/%3F%40' => '/%20webhook/%3F%40',
      "/caf\xC3\xA9/%C3%A9" => "/caf\xC3\xA9/%C3%A9".b
    }.each do |raw, expected|
      assert_equal expected.b, RioClient::Webhook::Middleware.normalized_path(raw), raw.inspect
    end
  end

  # The seed's Sinatra app (whose rack-protection resolves dot segments,
  # decodes %2e/%2f and squeezes slashes before routing) behind the
  # middleware: no spelling of the guarded path reaches it unverified.
  def test_paths_that_a_router_normalizes_are_guarded
    require File.join(RioTest::EXAMPLES_DIR, 'antispam_app')
    app = RioClient::Webhook::Middleware.new(AntispamApp, secret: SECRET, path: '/webhook', logger: Logger.new(@log))
    call = lambda do |path, env = {}|
      request = Rack::MockRequest.env_for('/', env.merge(method: 'POST', input: BODY,
                                                         'CONTENT_TYPE' => 'application/x-www-form-urlencoded'))
      request['PATH_INFO'] = path
      out = StringIO.new
      $stdout, stdout = out, $stdout
      begin
        [app.call(request).first, out.string]
      ensure
        $stdout = stdout
      end
    end
    sneaky = ['//webhook/comment/antispam', '/x/../webhook/comment/antispam', '/./webhook/comment/antispam',
              '/%2e%2e/webhook/comment/antispam', '/x/%2E%2E/webhook/comment/antispam',
              '/webhook%2fcomment/antispam', '\\webhook/comment/antispam', '/%77ebhook/comment/antispam',
              '///webhook///comment///antispam']
    sneaky.each do |path|
      status, out = call.call(path)
      assert_equal 401, status, path
      assert_equal '', out, path
      # Signed, the same request reaches the app (as the route it normalizes to).
      status, out = call.call(path, signed)
      assert_equal 200, status, path
      assert_equal "banned 127.0.0.1\n", out, path
    end
    # The plain path is guarded; others pass through unverified, also after
    # normalization.
    assert_equal 401, call.call('/webhook/comment/antispam').first
    assert_equal 404, call.call('/health').first
    assert_equal 404, call.call('/webhooks/../health/./x').first
    # A raw path under the prefix stays guarded even where it normalizes out.
    assert_equal 401, call.call('/webhook/../health').first
  end

  def test_regexp_paths_match_the_normalized_path_too
    inner = ->(_env) { [200, {}, ['ok']] }
    app = RioClient::Webhook::Middleware.new(inner, secret: SECRET, path: %r{\A/hooks/})
    ['/hooks/a', '//hooks/a', '/x/../hooks/a', '/%68ooks/a'].each do |path|
      env = Rack::MockRequest.env_for('/', method: 'POST', input: BODY)
      env['PATH_INFO'] = path
      assert_equal 401, app.call(env).first, path
    end
    assert_equal 200, Rack::MockRequest.new(app).post('/other/hooks/a', input: BODY).status
  end
end

# RioClient::Webhook::ControllerHelpers in a stand-in for a Rails controller
# (the calls Rails makes: before_action registration, request.headers,
# request.raw_post, render).
class ControllerHelpersTest < Minitest::Test
  include WebhookFixtures

  FakeRequest = Struct.new(:env, :raw_post, :request_method, :query_string) do
    # ActionDispatch::Http::Headers answers #env.
    def headers
      Struct.new(:env).new(env)
    end
  end

  class FakeController
    class << self
      attr_reader :callbacks

      def before_action(name, **options)
        (@callbacks ||= []) << [name, options]
      end
    end

    include RioClient::Webhook::ControllerHelpers
    verify_rio_webhook only: :antispam_comment

    attr_reader :request, :rendered

    def initialize(env, body, method: 'POST', query: '')
      @request = FakeRequest.new(env, body, method, query)
    end

    def render(**options)
      @rendered = options
    end

    def logger
      @logger ||= Logger.new(StringIO.new)
    end

    def rio_webhook_secret
      WebhookFixtures::SECRET
    end
  end

  def test_registers_the_before_action
    assert_equal [[:verify_rio_webhook!, { only: :antispam_comment }]], FakeController.callbacks
  end

  def test_signed_request_passes
    controller = FakeController.new(signed, BODY)
    controller.verify_rio_webhook!
    assert_nil controller.rendered
  end

  def test_bad_requests_get_401
    [[signed, "#{BODY}x"], [signed(secret: OTHER_SECRET), BODY], [{}, BODY]].each do |env, body|
      controller = FakeController.new(env, body)
      controller.verify_rio_webhook!
      assert_equal({ json: { status: 'error', error: 'invalid webhook signature' }, status: :unauthorized },
                   controller.rendered)
    end
  end

  def test_a_get_is_verified_over_its_query_string
    query = 'ip=127.0.0.1&content=I+am+a+spammer'
    controller = FakeController.new(signed(body: query), '', method: 'GET', query: query)
    controller.verify_rio_webhook!
    assert_nil controller.rendered
    [query.sub('spammer', 'friend'), "#{query}&x=1", ''].each do |tampered|
      controller = FakeController.new(signed(body: query), '', method: 'GET', query: tampered)
      controller.verify_rio_webhook!
      assert_equal :unauthorized, controller.rendered[:status], tampered
    end
  end

  def test_secret_defaults_to_the_environment
    klass = Class.new do
      include RioClient::Webhook::ControllerHelpers
    end
    old = ENV.fetch('RIO_WEBHOOK_SECRET', nil)
    ENV['RIO_WEBHOOK_SECRET'] = OTHER_SECRET
    assert_equal OTHER_SECRET, klass.new.rio_webhook_secret
    ENV.delete('RIO_WEBHOOK_SECRET')
    assert_raises(ArgumentError) { klass.new.rio_webhook_secret }
  ensure
    old ? ENV['RIO_WEBHOOK_SECRET'] = old : ENV.delete('RIO_WEBHOOK_SECRET')
  end
end
