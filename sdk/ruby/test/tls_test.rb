# frozen_string_literal: true

require 'test_helper'

# The client over TLS and mutual TLS to a real rio-server started with
# certificates made by openssl for the test: a custom CA, an expected server
# name, a client certificate, the RIO_TLS_* variables, and the handshakes
# that must fail.
class TlsTest < Minitest::Test
  EVENT = RioTest::EVENT
  TLS_VARIABLES = %w[RIO_TLS_CA RIO_TLS_SERVER_NAME RIO_TLS_CLIENT_CERT RIO_TLS_CLIENT_KEY].freeze

  def setup
    @certs = RioTest.test_certificates
    @saved_env = TLS_VARIABLES.to_h { |name| [name, ENV.delete(name)] }
    @clients = []
  end

  def teardown
    @clients.each(&:close)
    @saved_env.each { |name, value| value ? ENV[name] = value : ENV.delete(name) }
  end

  def pem(name)
    File.binread(@certs[name])
  end

  def path(name)
    Pathname.new(@certs[name])
  end

  def sender(mtls:)
    server = RioTest.tls_server(mtls: mtls)
    credentials = if mtls
                    GRPC::Core::ChannelCredentials.new(pem('ca.pem'), pem('client.key'), pem('client.pem'))
                  else
                    GRPC::Core::ChannelCredentials.new(pem('ca.pem'))
                  end
    admin = RioTest::Admin.new(server.grpc_address, credentials)
    admin.create_sender(admin.create_project)
  end

  def client(dsn, **options)
    RioClient::Client.new(dsn: dsn, retry_policy: RioClient::RetryPolicy::NONE, **options).tap { |c| @clients << c }
  end

  def test_emit_over_tls_with_the_test_ca
    dsn = sender(mtls: false).dsn
    assert dsn.start_with?('rios://'), dsn
    [pem('ca.pem'), path('ca.pem')].each do |ca|
      result = client(dsn, root_certificates: ca).emit(EVENT, n: 1)
      assert_equal [0, false], [result.handlers, result.duplicate?]
    end
  end

  # A TCP relay on 127.0.0.1 whose connections wait `delay` seconds (a slow
  # network path) before their bytes flow to 127.0.0.1:`upstream_port`.
  def slow_relay(upstream_port, delay)
    listener = TCPServer.new('127.0.0.1', 0)
    Thread.new do
      loop do
        client = listener.accept
        Thread.new(client) do |downstream|
          sleep delay # the slow path being simulated
          pump(downstream, TCPSocket.new('127.0.0.1', upstream_port))
        rescue SystemCallError
          downstream.close # the server has gone
        end
      end
    rescue IOError, SystemCallError
      nil # closed
    end
    listener
  end

  def pump(downstream, upstream)
    peers = { downstream => upstream, upstream => downstream }
    loop do
      IO.select(peers.keys).first.each { |from| peers[from].write(from.readpartial(16_384)) }
    end
  rescue EOFError, IOError, SystemCallError
    peers.each_key(&:close)
  end

  def test_a_handshake_slower_than_the_reconnect_backoff_still_connects
    server = RioTest.tls_server(mtls: false)
    dsn = sender(mtls: false).dsn
    relay = slow_relay(server.port, 0.7)
    slow_dsn = dsn.sub(":#{server.port}/", ":#{relay.addr[1]}/")
    assert_equal 0, client(slow_dsn, root_certificates: path('ca.pem')).emit(EVENT, n: 1).handlers
  ensure
    relay&.close
  end

  def test_a_client_that_does_not_trust_the_ca_is_refused
    dsn = sender(mtls: false).dsn
    [path('other-ca.pem'), nil].each do |ca| # another CA; the system's roots
      error = assert_raises(RioClient::Unavailable) { client(dsn, root_certificates: ca).emit(EVENT) }
      assert_equal GRPC::Core::StatusCodes::UNAVAILABLE, error.code
    end
  end

  def test_the_server_name_is_checked_and_can_be_overridden
    dsn = sender(mtls: false).dsn
    assert_equal 0, client(dsn, root_certificates: path('ca.pem'), tls_server_name: 'localhost').emit(EVENT).handlers
    assert_raises(RioClient::Unavailable) do
      client(dsn, root_certificates: path('ca.pem'), tls_server_name: 'rio.example.com').emit(EVENT)
    end
  end

  def test_mutual_tls_needs_a_client_certificate_of_the_ca
    dsn = sender(mtls: true).dsn
    ok = client(dsn, root_certificates: path('ca.pem'), client_certificate: path('client.pem'),
                     client_key: pem('client.key'))
    assert_equal 0, ok.emit(EVENT, mtls: true).handlers
    assert_raises(RioClient::Unavailable) { client(dsn, root_certificates: path('ca.pem')).emit(EVENT) }
    assert_raises(RioClient::Unavailable) do
      client(dsn, root_certificates: path('ca.pem'), client_certificate: path('other-client.pem'),
                  client_key: path('other-client.key')).emit(EVENT)
    end
  end

  def test_tls_settings_come_from_the_environment
    dsn = sender(mtls: true).dsn
    ENV['RIO_TLS_CA'] = @certs['ca.pem']
    ENV['RIO_TLS_CLIENT_CERT'] = @certs['client.pem']
    ENV['RIO_TLS_CLIENT_KEY'] = @certs['client.key']
    ENV['RIO_TLS_SERVER_NAME'] = 'localhost'
    assert_equal 0, client(dsn).emit(EVENT, env: true).handlers
  end

  def test_unusable_tls_settings_are_refused_before_any_call
    dsn = 'rios://app:token@127.0.0.1:1/p'
    error = assert_raises(ArgumentError) { client(dsn, client_certificate: path('client.pem')) }
    assert_equal 'a client certificate needs its private key and the reverse: pass both client_certificate: ' \
                 'and client_key: (or set RIO_TLS_CLIENT_CERT and RIO_TLS_CLIENT_KEY), or neither', error.message
    error = assert_raises(ArgumentError) { client(dsn, root_certificates: @certs['ca.pem']) }
    assert_equal 'root_certificates is not PEM (no -----BEGIN line; pass a Pathname for a file)', error.message
    missing = "#{@certs['ca.pem']}.missing"
    error = assert_raises(ArgumentError) { client(dsn, root_certificates: Pathname.new(missing)) }
    assert_equal "root_certificates=#{missing}: cannot read the file: No such file or directory", error.message
    ENV['RIO_TLS_CA'] = missing
    error = assert_raises(ArgumentError) { client(dsn) }
    assert_equal "RIO_TLS_CA=#{missing}: cannot read the file: No such file or directory", error.message
    # A plaintext DSN with TLS settings is a mistake, not a silent downgrade.
    ENV['RIO_TLS_CA'] = @certs['ca.pem']
    error = assert_raises(ArgumentError) { client('rio://app:token@127.0.0.1:1/p') }
    assert_equal 'TLS settings (root certificates, server name or client certificate, given or from RIO_TLS_*) ' \
                 "need a TLS DSN, but 'rio://app:***@127.0.0.1:1/p' is plaintext: use rios://", error.message
  end
end
