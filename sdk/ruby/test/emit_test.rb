# frozen_string_literal: true

require 'test_helper'
require 'logger'
require 'net/http'
require 'rack'
require 'timeout'
begin
  require 'rack/handler/webrick'
rescue LoadError # Rack 3 moved the handlers to the rackup gem
  require 'rackup/handler/webrick'
end

# The client against the real rio-server, a real PostgreSQL and real HTTP
# receivers: what a receiver gets, every DSN form, errors, retries and
# idempotency.
class EmitTest < RioIntegrationTest
  UUID = /\A\h{8}-\h{4}-\h{4}-\h{4}-\h{12}\z/.freeze
  FAST_RETRY = RioClient::RetryPolicy.new(max_attempts: 3, initial_backoff: 0.05, max_backoff: 0.2)

  def messages_with_key(key)
    Integer(RioTest.sql("SELECT count(*) FROM messages WHERE idempotency_key = '#{key}'"))
  end

  def test_emit_lands_at_a_real_receiver_signed
    handler = @admin.create_handler(@sender.project, @receiver.url('/hooks/json'))
    result = client.emit(EVENT, ip: '127.0.0.1', content: 'I am a spammer', id: (2**60) + 1, tags: ['é', nil])

    assert_match UUID, result.message_id
    assert_equal 1, result.handlers
    refute result.duplicate?
    assert_match UUID, result.idempotency_key

    request = @receiver.wait(1).first
    assert_equal 'POST', request.method
    assert_equal '/hooks/json', request.path
    expected = '{"ip":"127.0.0.1","content":"I am a spammer","id":1152921504606846977,"tags":["é",null]}'
    assert_equal expected.b, request.body.b
    h = request.headers
    assert_equal 'application/json', h['content-type']
    assert_equal result.message_id, h['webhook-id']
    assert_equal "uuid=#{result.message_id},project=#{@sender.project},action=#{EVENT}", h['x-rio-event']
    assert_equal '1', h['x-rio-attempt']
    assert_match %r{\Ario/}, h['user-agent']
    assert_in_delta Time.now.to_i, Integer(h['webhook-timestamp']), 60
    assert RioClient::Webhook.verify(handler.secret, h, request.body)
    RioClient::Webhook.verify!(handler.secret, h, request.body)
    refute RioClient::Webhook.verify(handler.secret, h, "#{request.body} ")
  end

  def test_hash_and_json_text_payloads
    @admin.create_handler(@sender.project, @receiver.url)
    text = '{"b": 1,   "a" : [1, 2.50, 12345678901234567890]}'
    c = client
    c.emit(EVENT, text)
    c.emit(EVENT, { 'ip' => '10.0.0.1' })
    c.emit(EVENT, { ip: '10.0.0.2' }, idempotency_key: "k-#{SecureRandom.hex(4)}")
    c.emit(EVENT)
    bodies = @receiver.wait(4).map(&:body).sort
    assert_equal ['{"ip":"10.0.0.1"}', '{"ip":"10.0.0.2"}', '{}', text].sort, bodies
    assert_raises(ArgumentError) { c.emit(EVENT, { a: 1 }, b: 2) }
    assert_raises(ArgumentError) { c.emit(EVENT, [1, 2]) }
  end

  def test_seed_form_handler_gets_form_fields
    handler = @admin.create_handler(@sender.project, @receiver.url, json: false)
    client(dsn_for(scheme: 'http', path: "1/#{@sender.project}"))
      .emit('comment-published', ip: '127.0.0.1', content: 'I am a spammer')
    request = @receiver.wait(1).first
    assert_equal({ 'ip' => '127.0.0.1', 'content' => 'I am a spammer' }, RioTest.parse_form(request.body))
    assert_equal 'application/x-www-form-urlencoded', request.headers['content-type']
    assert RioClient::Webhook.verify(handler.secret, request.headers, request.body)
  end

  # A GET handler gets the payload in the query string and an empty body; the
  # signature covers the query string exactly as sent.
  def test_a_get_delivery_is_signed_over_its_query_string
    handler = @admin.create_handler(@sender.project, @receiver.url('/hooks/get?static=1'),
                                    json: false, method: :GET)
    result = client.emit(EVENT, ip: '127.0.0.1', content: 'I am a spammer')
    request = @receiver.wait(1).first
    assert_equal 'GET', request.method
    assert_equal '', request.body
    assert_equal '/hooks/get', request.path
    assert_equal 'static=1&ip=127.0.0.1&content=I+am+a+spammer', request.query
    assert_equal result.message_id, request.headers['webhook-id']
    assert_nil RioClient::Webhook.verify!(handler.secret, request.headers, request.query)
    content = RioClient::Webhook.signed_content(request.method, request.body, request.query)
    assert RioClient::Webhook.verify(handler.secret, request.headers, content)
    refute RioClient::Webhook.verify(handler.secret, request.headers, request.body)
    ['static=1&ip=127.0.0.1&content=I+am+a+friend', 'static=1&ip=10.6.6.6&content=I+am+a+spammer',
     "#{request.query}&admin=1", 'ip=127.0.0.1&content=I+am+a+spammer'].each do |tampered|
      error = assert_raises(RioClient::WebhookVerificationError, tampered) do
        RioClient::Webhook.verify!(handler.secret, request.headers, tampered)
      end
      assert_equal 'no webhook-signature entry matches the secret', error.message
    end
  end

  # A real GET delivery to a real Rack server running the middleware: it
  # checks the query string by itself; Rio's headers replayed with another
  # query string get 401 and never reach the app.
  def test_a_get_delivery_passes_the_rack_middleware
    handler = @admin.create_handler(@sender.project, 'http://127.0.0.1:9/not-yet', json: false, method: :GET)
    seen = Queue.new
    app = lambda do |env|
      req = Rack::Request.new(env)
      seen << [req.GET, env.select { |k, _| k.start_with?('HTTP_WEBHOOK_') }]
      [200, { 'content-type' => 'application/json' }, ['{"status":"success","retval":0}']]
    end
    guarded = RioClient::Webhook::Middleware.new(app, secret: handler.secret, path: '/webhook',
                                                      logger: Logger.new(File::NULL))
    server = WEBrick::HTTPServer.new(BindAddress: '127.0.0.1', Port: 0, Logger: WEBrick::Log.new(File::NULL),
                                     AccessLog: [])
    rack_handler = defined?(Rackup::Handler::WEBrick) ? Rackup::Handler::WEBrick : Rack::Handler::WEBrick
    server.mount('/', rack_handler, guarded)
    thread = Thread.new { server.start }
    begin
      url = "http://127.0.0.1:#{server.config[:Port]}/webhook/comment/antispam"
      @admin.update_handler_url(handler.id, url)
      client.emit(EVENT, ip: '127.0.0.1', content: 'I am a spammer')
      params, signed = Timeout.timeout(15) { seen.pop }
      assert_equal({ 'ip' => '127.0.0.1', 'content' => 'I am a spammer' }, params)

      headers = signed.to_h { |k, v| [k.delete_prefix('HTTP_').tr('_', '-').downcase, v] }
      replay = lambda do |query|
        Net::HTTP.start('127.0.0.1', server.config[:Port]) do |http|
          http.get("/webhook/comment/antispam?#{query}", headers).code
        end
      end
      assert_equal '401', replay.call('ip=10.6.6.6&content=I+am+a+spammer')
      assert_equal '401', replay.call('ip=127.0.0.1&content=I+am+a+spammer&x=1')
      assert_equal '401', replay.call('')
      assert seen.empty?
      # The request as Rio sent it still verifies (dedupe on webhook-id).
      assert_equal '200', replay.call('ip=127.0.0.1&content=I+am+a+spammer')
    ensure
      server.shutdown
      thread.join(5)
    end
  end

  def test_every_dsn_form_reaches_the_server
    @admin.create_handler(@sender.project, @receiver.url)
    forms = {
      'rio' => -> { client(dsn_for) },
      'http-seed' => -> { client(dsn_for(scheme: 'http', path: "1/#{@sender.project}")) },
      'http-deep-path' => -> { client(dsn_for(scheme: 'http', path: "a/b/#{@sender.project}/")) },
      'positional' => -> { RioClient::Client.new(dsn_for).tap { |c| @clients << c } },
      'environment' => lambda do
        old = ENV.fetch('RIO_DSN', nil)
        ENV['RIO_DSN'] = dsn_for
        RioClient::Client.new.tap { |c| @clients << c }
      ensure
        old ? ENV['RIO_DSN'] = old : ENV.delete('RIO_DSN')
      end
    }
    forms.each do |form, make|
      assert_equal 1, make.call.emit(EVENT, form: form).handlers, form
    end
    assert_equal forms.keys.sort, @receiver.wait(forms.size).map { |r| JSON.parse(r.body)['form'] }.sort
  end

  def test_tls_dsns_use_tls
    @admin.create_handler(@sender.project, @receiver.url)
    key, cert = Dir.mktmpdir { |dir| RioTest.self_signed_certificate(dir) }
    proxy = RioTest::FlakyProxy.new(@server.grpc_address, tls: [key, cert])
    %w[rios https].each do |scheme|
      dsn = dsn_for(scheme: scheme, path: "1/#{@sender.project}", port: proxy.port)
      assert_equal 1, client(dsn, root_certificates: cert).emit(EVENT, tls: scheme).handlers
      # Without the proxy's root the handshake fails: it really is TLS.
      assert_raises(RioClient::Unavailable) do
        client(dsn, retry_policy: RioClient::RetryPolicy::NONE).emit(EVENT, tls: 'untrusted')
      end
    end
    assert_equal %w[https rios], @receiver.wait(2).map { |r| JSON.parse(r.body)['tls'] }.sort
  ensure
    proxy&.close
  end

  def test_wrong_token_is_an_authentication_error
    error = assert_raises(RioClient::Unauthenticated) do
      client(dsn_for(token: 'not-the-token')).emit(EVENT, ip: '127.0.0.1')
    end
    assert_kind_of RioClient::Error, error
    assert_equal GRPC::Core::StatusCodes::UNAUTHENTICATED, error.code
    assert_equal 'UNAUTHENTICATED: invalid sender credentials', error.message
    assert_equal 1, error.attempts
    assert_kind_of GRPC::Unauthenticated, error.grpc_error
    assert_same error.grpc_error, error.cause
  end

  def test_unknown_sender_is_an_authentication_error
    assert_raises(RioClient::Unauthenticated) do
      client("rio://nobody:#{@sender.token}@127.0.0.1:#{@server.port}/#{@sender.project}").emit(EVENT)
    end
  end

  def test_another_projects_sender_is_denied
    other = @admin.create_project
    error = assert_raises(RioClient::PermissionDenied) { client(dsn_for(path: other)).emit(EVENT) }
    assert_equal GRPC::Core::StatusCodes::PERMISSION_DENIED, error.code
  end

  def test_bad_input_is_invalid_argument
    c = client
    assert_match(/event/, assert_raises(RioClient::InvalidArgument) { c.emit('bad event!', {}) }.message)
    assert_match(/object/, assert_raises(RioClient::InvalidArgument) { c.emit(EVENT, '[1, 2]') }.message)
    assert_match(/JSON/, assert_raises(RioClient::InvalidArgument) { c.emit(EVENT, '{not json') }.message)
    assert_raises(RioClient::InvalidArgument) { c.emit_batch([]) }
  end

  def test_server_down_retries_then_unavailable
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    error = assert_raises(RioClient::Unavailable) do
      client(dsn_for(port: RioTest.free_port), retry_policy: FAST_RETRY, timeout: 5).emit(EVENT, ip: '127.0.0.1')
    end
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    assert_equal 3, error.attempts
    assert_match(/\AUNAVAILABLE: .*\(after 3 attempts\)\z/m, error.message)
    assert_kind_of GRPC::Unavailable, error.cause
    assert_operator elapsed, :>=, 0.12 # two backoffs of at least 0.04 and 0.08 s
  end

  def test_server_down_with_the_default_policy_gives_up_in_bounded_time
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    error = assert_raises(RioClient::Unavailable) { client(dsn_for(port: RioTest.free_port)).emit(EVENT) }
    assert_equal 5, error.attempts
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 10
  end

  def test_server_that_comes_back_during_retries_gets_the_emit
    @admin.create_handler(@sender.project, @receiver.url)
    proxy = RioTest::FlakyProxy.new(@server.grpc_address, %i[refuse refuse])
    result = client(dsn_for(port: proxy.port), retry_policy: FAST_RETRY).emit(EVENT, n: 1)
    refute result.duplicate?
    assert_equal 3, proxy.calls.size
    assert_equal 1, proxy.calls.flat_map(&:idempotency_keys).uniq.size
    @receiver.wait(1)
  ensure
    proxy&.close
  end

  # The server commits the first attempt but its reply never arrives (:drop:
  # UNAVAILABLE; :late: past the deadline). The retry carries the same
  # idempotency key, so Rio answers with the first message, duplicate: true,
  # and creates nothing.
  %i[drop late].each do |mode|
    define_method("test_retried_emit_after_a_#{mode}_reply_is_not_duplicated") do
      @admin.create_handler(@sender.project, @receiver.url)
      proxy = RioTest::FlakyProxy.new(@server.grpc_address, [mode])
      begin
        result = client(dsn_for(port: proxy.port), retry_policy: FAST_RETRY, timeout: 3)
                 .emit(EVENT, ip: '127.0.0.1')
      ensure
        proxy.close
      end
      first, second = proxy.calls
      assert_equal 2, proxy.calls.size
      assert_equal [result.idempotency_key], first.idempotency_keys
      assert_equal first.idempotency_keys, second.idempotency_keys
      lost = RioClient::V1::EmitResponse.decode(first.reply)
      refute lost.duplicate
      assert_equal lost.message_id, result.message_id
      assert result.duplicate?
      assert_equal 1, messages_with_key(result.idempotency_key)
      assert_equal '1', RioTest.sql("SELECT count(*) FROM deliveries WHERE message_id = '#{result.message_id}'")
      assert_equal result.message_id, @receiver.wait(1).first.headers['webhook-id']
    end
  end

  def test_explicit_idempotency_key
    key = "comment-#{SecureRandom.uuid}"
    c = client
    first = c.emit(EVENT, { n: 1 }, idempotency_key: key)
    second = c.emit(EVENT, { n: 2 }, idempotency_key: key)
    assert_equal [false, true], [first.duplicate?, second.duplicate?]
    assert_equal first.message_id, second.message_id
    assert_equal [key, key], [first.idempotency_key, second.idempotency_key]
    assert_equal 1, messages_with_key(key)
  end

  def test_each_emit_gets_its_own_key
    c = client
    a = c.emit(EVENT, n: 1)
    b = c.emit(EVENT, n: 1)
    refute_equal a.idempotency_key, b.idempotency_key
    refute_equal a.message_id, b.message_id
  end

  def test_emit_batch
    @admin.create_handler(@sender.project, @receiver.url)
    c = client
    results = c.emit_batch([
                             [EVENT, { n: 1 }],
                             RioClient::Event.new(EVENT, { n: 2 }),
                             { event: 'nobody-listens', payload: { n: 3 } },
                             [EVENT, '{"n":4}', 'batch-key-4']
                           ])
    again = c.emit_batch([{ 'event' => EVENT, 'payload' => { n: 5 }, 'idempotency_key' => 'batch-key-4' }])
    assert_equal [1, 1, 0, 1], results.map(&:handlers)
    assert_equal [false] * 4, results.map(&:duplicate?)
    assert_equal 4, results.map(&:message_id).uniq.size
    assert_equal 4, results.map(&:idempotency_key).uniq.size
    assert_equal 'batch-key-4', results[3].idempotency_key
    assert again.first.duplicate?
    assert_equal results[3].message_id, again.first.message_id
    assert_equal [1, 2, 4], @receiver.wait(3).map { |r| JSON.parse(r.body)['n'] }.sort
    assert_raises(ArgumentError) { c.emit_batch([EVENT]) }
  end

  def test_client_is_thread_safe
    @admin.create_handler(@sender.project, @receiver.url)
    c = client
    results = Array.new(16) { |n| Thread.new { c.emit(EVENT, n: n) } }.map(&:value)
    assert_equal 16, results.map(&:message_id).uniq.size
    assert_equal 16, @receiver.wait(16).size
  end

  def test_closed_client_refuses_calls
    c = RioClient::Client.new(dsn: @sender.dsn)
    c.emit(EVENT)
    c.close
    c.close
    assert c.closed?
    assert_raises(RioClient::ClientClosed) { c.emit(EVENT) }
  end
end
