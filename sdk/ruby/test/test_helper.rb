# frozen_string_literal: true

# Test kit for the Ruby SDK's tests: a PostgreSQL cluster, the real rio-server
# binary ($RIO_SERVER_BINARY), the admin API through the generated stubs, an
# HTTP receiver that records what Rio sends, and a gRPC proxy that loses or
# delays replies on demand. Nothing is mocked.
#
# The database is on the cluster at 127.0.0.1:$RIO_TEST_PG_PORT (tools/test
# starts one) or on a private cluster started here; one fresh database and one
# server per test process, started on first use and stopped after the run.

require 'minitest/autorun'
require 'fileutils'
require 'json'
require 'open3'
require 'securerandom'
require 'socket'
require 'tmpdir'
require 'uri'
require 'webrick'

require 'rio_client'
require 'rio_client/v1/project_services_pb'
require 'rio_client/v1/handler_services_pb'

module RioTest
  ADMIN_TOKEN = 'sdk-test-admin-token-0123456789abcdef'
  SDK_DIR = File.expand_path('..', __dir__)
  EXAMPLES_DIR = File.join(SDK_DIR, 'examples')
  EVENT = 'comment-published'

  module_function

  # Polls the block until it is truthy or +timeout+ seconds pass.
  def wait_for(timeout: 15, interval: 0.02)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      value = yield
      return value if value
      return nil if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep interval
    end
  end

  # A port nothing listens on right now.
  def free_port
    server = TCPServer.new('127.0.0.1', 0)
    server.addr[1]
  ensure
    server&.close
  end

  def as_postgres(argv)
    Process.euid.zero? ? ['runuser', '-u', 'postgres', '--', *argv] : argv
  end

  def run!(*argv, **opts)
    out, status = Open3.capture2e(*argv, **opts)
    raise "#{argv.join(' ')} failed (#{status.exitstatus}):\n#{out}" unless status.success?

    out
  end

  # The PostgreSQL the tests use.
  class PgCluster
    attr_reader :port

    def initialize
      if (port = ENV.fetch('RIO_TEST_PG_PORT', nil)) && !port.empty?
        @port = Integer(port)
        return
      end
      versions = Dir['/usr/lib/postgresql/*/bin'].sort_by { |d| d[%r{/(\d+)/bin}, 1].to_i }
      @bindir = ENV.fetch('RIO_PG_BINDIR', nil) || versions.last or
        raise 'RIO_TEST_PG_PORT is unset and no PostgreSQL is installed'
      @dir = Dir.mktmpdir('rio-sdk-pg.')
      File.chmod(0o755, @dir)
      FileUtils.chown('postgres', nil, @dir) if Process.euid.zero?
      data = File.join(@dir, 'data')
      RioTest.run!(*RioTest.as_postgres(["#{@bindir}/initdb", '-D', data, '-A', 'trust', '-U', 'postgres',
                                         '-E', 'UTF8', '--locale=C']))
      @port = RioTest.free_port
      opts = "-p #{@port} -k #{@dir} -c listen_addresses=127.0.0.1 -c fsync=off " \
             '-c synchronous_commit=off -c full_page_writes=off'
      RioTest.run!(*RioTest.as_postgres(["#{@bindir}/pg_ctl", '-D', data, '-l', File.join(@dir, 'log'),
                                         '-o', opts, '-w', '-t', '60', 'start']))
    end

    def psql(sql, database = 'postgres')
      RioTest.run!('psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', @port.to_s,
                   '-U', 'postgres', '-d', database, '-c', sql).strip
    end

    def create_database(prefix)
      name = "#{prefix}_#{Process.pid}_#{SecureRandom.hex(4)}"
      psql(%(CREATE DATABASE "#{name}"))
      name
    end

    def drop_database(name)
      psql(%(DROP DATABASE IF EXISTS "#{name}" WITH (FORCE)))
    end

    def url(database)
      "postgresql://postgres@127.0.0.1:#{@port}/#{database}"
    end

    def close
      return unless @dir

      system(*RioTest.as_postgres(["#{@bindir}/pg_ctl", '-D', File.join(@dir, 'data'), '-m', 'fast', '-w', 'stop']),
             out: File::NULL, err: File::NULL)
      FileUtils.rm_rf(@dir)
      @dir = nil
    end
  end

  # The --secret_key_file of every server this test process starts (one key,
  # mode 0600), so servers started one after another on one database open
  # each other's sealed secrets. Removed at exit.
  def self.secret_key_file
    @secret_key_file ||= begin
      dir = Dir.mktmpdir('rio-key-')
      at_exit { FileUtils.rm_rf(dir) }
      path = File.join(dir, 'secret_key')
      File.open(path, File::WRONLY | File::CREAT | File::EXCL, 0o600) do |f|
        f.write("test #{[SecureRandom.random_bytes(32)].pack('m0')}\n")
      end
      path
    end
  end

  # rio-server on 127.0.0.1:0, its output in a log file.
  class ServerProcess
    READY = /rio-server: ready grpc=(\S+) http=(\S+)/.freeze
    attr_reader :grpc_address, :port

    def initialize(binary, database_url, extra_args = [])
      @log = File.join(Dir.tmpdir, "rio-server.#{Process.pid}.#{SecureRandom.hex(4)}.log")
      @pid = Process.spawn(binary, '--database_url', database_url, '--listen', '127.0.0.1:0',
                           '--http_listen', '127.0.0.1:0', '--admin_token', ADMIN_TOKEN,
                           '--secret_key_file', RioTest.secret_key_file, '--shutdown_grace', '1s',
                           '--egress_allow=127.0.0.0/8,::1/128',
                           *extra_args, in: File::NULL, out: @log, err: %i[child out])
      match = RioTest.wait_for(timeout: 30) { READY.match(log) || exited? }
      unless match.is_a?(MatchData)
        stop
        raise "rio-server did not become ready; log:\n#{log}"
      end
      @grpc_address = match[1]
      @port = Integer(@grpc_address.split(':').last)
    end

    def log
      File.exist?(@log) ? File.read(@log) : ''
    end

    def exited?
      return true if @status

      _, @status = Process.waitpid2(@pid, Process::WNOHANG)
      !@status.nil?
    end

    def stop
      unless exited?
        Process.kill('TERM', @pid)
        RioTest.wait_for(timeout: 15) { exited? } or begin
          Process.kill('KILL', @pid)
          Process.wait(@pid)
        end
      end
    end

    def remove_log
      FileUtils.rm_f(@log)
    end
  end

  Sender = Struct.new(:project, :name, :token, :dsn, keyword_init: true)

  # The admin API, through the SDK's generated stubs.
  class Admin
    def initialize(address, credentials = :this_channel_is_insecure)
      @projects = RioClient::V1::ProjectService::Stub.new(address, credentials)
      @handlers = RioClient::V1::HandlerService::Stub.new(address, credentials)
      @metadata = { metadata: { 'authorization' => "Bearer #{ADMIN_TOKEN}" } }
    end

    def create_project(slug = nil)
      slug ||= "p-#{SecureRandom.hex(6)}"
      @projects.create_project(RioClient::V1::CreateProjectRequest.new(slug: slug), **@metadata)
      slug
    end

    def create_sender(project, name = 'sender')
      reply = @projects.create_sender(RioClient::V1::CreateSenderRequest.new(project: project, name: name),
                                      **@metadata)
      Sender.new(project: project, name: name, token: reply.token, dsn: reply.dsn)
    end

    def create_handler(project, url, event: EVENT, json: true, method: :POST)
      @handlers.create_handler(
        RioClient::V1::CreateHandlerRequest.new(project: project, event: event, url: url, timeout_ms: 5000,
                                                content_type: json ? :JSON : :FORM, method: method),
        **@metadata
      )
    end

    def update_handler_url(id, url)
      @handlers.update_handler(RioClient::V1::UpdateHandlerRequest.new(id: id, url: url), **@metadata)
    end
  end

  # +query+: the query string as received, undecoded ('' without one).
  Request = Struct.new(:method, :path, :query, :headers, :body, keyword_init: true)

  # A threaded HTTP server (WEBrick) on 127.0.0.1:0 recording every request
  # (header names lower-case) and answering 200.
  class Receiver
    attr_reader :port

    def initialize
      @requests = []
      @mutex = Mutex.new
      @cond = ConditionVariable.new
      @server = WEBrick::HTTPServer.new(BindAddress: '127.0.0.1', Port: 0, Logger: WEBrick::Log.new(File::NULL),
                                        AccessLog: [])
      @port = @server.config[:Port]
      @server.mount_proc('/') do |req, res|
        headers = req.header.transform_values { |v| v.join(', ') }
        record = Request.new(method: req.request_method, path: req.path, query: req.query_string.to_s,
                             headers: headers, body: req.body.to_s)
        @mutex.synchronize do
          @requests << record
          @cond.broadcast
        end
        res.status = 200
        res['content-type'] = 'application/json'
        res.body = '{"status":"success","retval":0}'
      end
      @thread = Thread.new { @server.start }
    end

    def url(path = '/hook')
      "http://127.0.0.1:#{@port}#{path}"
    end

    # Waits until +count+ requests arrived; returns all so far.
    def wait(count = 1, timeout: 15)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      @mutex.synchronize do
        while @requests.size < count
          left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
          raise "the receiver got #{@requests.size} requests within #{timeout}s, expected #{count}" if left <= 0

          @cond.wait(@mutex, left)
        end
        @requests.dup
      end
    end

    def close
      @server.shutdown
      @thread.join(5)
    end
  end

  # Bytes in, bytes out: lets the proxy relay messages without parsing them.
  # (A gRPC server marshals a reply with its class's encode, hence the
  # wrapper.)
  Raw = Struct.new(:bytes) do
    def self.encode(message) = message.is_a?(Raw) ? message.bytes : message
    def self.decode(bytes) = bytes
  end

  ProxiedCall = Struct.new(:idempotency_keys, :reply)

  # A gRPC proxy for rio.v1.EmitService in front of the real server. Each call
  # takes the next mode from +modes+ ("pass" once they run out):
  #   :drop   forward, let the server commit, then answer UNAVAILABLE;
  #   :late   forward, then hold the reply until the client's deadline passed;
  #   :refuse answer UNAVAILABLE without forwarding;
  #   :pass   forward and relay the reply.
  # With tls: [key_pem, cert_pem] it listens with TLS.
  class FlakyProxy
    attr_reader :port, :calls

    def initialize(upstream, modes = [], tls: nil)
      @modes = modes.dup
      @calls = []
      @lock = Mutex.new
      @upstream = GRPC::ClientStub.new(upstream, :this_channel_is_insecure)
      proxy = self
      service = Class.new do
        include GRPC::GenericService
        self.marshal_class_method = :encode
        self.unmarshal_class_method = :decode
        self.service_name = 'rio.v1.EmitService'
        rpc :Emit, Raw, Raw
        rpc :EmitBatch, Raw, Raw
        define_method(:emit) { |req, call| proxy.forward('/rio.v1.EmitService/Emit', req, call) }
        define_method(:emit_batch) { |req, call| proxy.forward('/rio.v1.EmitService/EmitBatch', req, call) }
      end
      @server = GRPC::RpcServer.new(pool_size: 8)
      creds = if tls
                GRPC::Core::ServerCredentials.new(nil, [{ private_key: tls[0], cert_chain: tls[1] }], false)
              else
                :this_port_is_insecure
              end
      @port = @server.add_http2_port('127.0.0.1:0', creds)
      @server.handle(service.new)
      @thread = Thread.new { @server.run_till_terminated }
      @server.wait_till_running(10)
    end

    def forward(method, request, call)
      keys = if method.end_with?('EmitBatch')
               RioClient::V1::EmitBatchRequest.decode(request).events.map(&:idempotency_key)
             else
               [RioClient::V1::EmitRequest.decode(request).idempotency_key]
             end
      record = ProxiedCall.new(keys, nil)
      mode = @lock.synchronize do
        @calls << record
        @modes.shift || :pass
      end
      raise GRPC::Unavailable, 'proxy: refused' if mode == :refuse

      auth = call.metadata['authorization']
      reply = @upstream.request_response(method, request, Raw.method(:encode), Raw.method(:decode),
                                         metadata: { 'authorization' => auth }, deadline: Time.now + 10)
      record.reply = reply
      raise GRPC::Unavailable, 'proxy: reply lost' if mode == :drop

      sleep([call.deadline - Time.now, 0].max + 0.3) if mode == :late
      Raw.new(reply)
    end

    def close
      @server.stop
      @thread.join(5)
    end
  end

  # (key PEM, certificate PEM) for 127.0.0.1 and localhost.
  def self_signed_certificate(dir)
    key = File.join(dir, 'key.pem')
    cert = File.join(dir, 'cert.pem')
    run!('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost',
         '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert)
    [File.read(key), File.read(cert)]
  end

  def parse_form(body)
    URI.decode_www_form(body).to_h
  end

  # The environment for example scripts: rio_client from this source tree.
  def ruby_env(extra = {})
    { 'RUBYLIB' => [File.join(SDK_DIR, 'lib'), ENV.fetch('RUBYLIB', nil)].compact.join(File::PATH_SEPARATOR) }
      .merge(extra)
  end

  # Runs `ruby ARGS` in examples/; returns stdout, raises with the output on
  # failure.
  def run_ruby(args, env: {})
    out, err, status = Open3.capture3(ruby_env(env), RbConfig.ruby, *args, chdir: EXAMPLES_DIR)
    raise "ruby #{args.join(' ')} exited #{status.exitstatus}:\n#{out}#{err}" unless status.success?

    out
  end

  # The session's shared state, created on first use.
  class << self
    def pg
      @pg ||= PgCluster.new
    end

    def database
      @database ||= pg.create_database('rio_sdk_ruby')
    end

    def sql(statement)
      pg.psql(statement, database)
    end

    def server
      @server ||= begin
        binary = ENV.fetch('RIO_SERVER_BINARY', nil)
        unless binary && File.executable?(binary)
          raise 'set RIO_SERVER_BINARY to a built rio-server (ctest does; by hand: ' \
                'RIO_SERVER_BINARY=build/server/rio-server)'
        end
        ServerProcess.new(binary, pg.url(database))
      end
    end

    def admin
      @admin ||= Admin.new(server.grpc_address)
    end

    # Throwaway certificates made by the repository's
    # tests/testkit/make_test_certs.sh (the C++ and Python tests use it too):
    # file name => path, e.g. 'ca.pem', 'server.pem', 'client.key'.
    def test_certificates
      @test_certificates ||= begin
        @certificates_dir = Dir.mktmpdir('rio-sdk-certs.')
        script = File.expand_path('../../../tests/testkit/make_test_certs.sh', __dir__)
        run!('/bin/sh', script, @certificates_dir)
        Dir.children(@certificates_dir).to_h { |name| [name, File.join(@certificates_dir, name)] }
      end
    end

    # A rio-server with TLS (test_certificates' server.pem) on its own
    # database, requiring client certificates of the test CA when +mtls+.
    def tls_server(mtls:)
      @tls_servers ||= {}
      @tls_servers[mtls] ||= begin
        certs = test_certificates
        args = ['--tls_cert', certs['server.pem'], '--tls_key', certs['server.key']]
        args += ['--tls_client_ca', certs['ca.pem']] if mtls
        @tls_databases = (@tls_databases || []) << pg.create_database('rio_sdk_ruby_tls')
        ServerProcess.new(ENV.fetch('RIO_SERVER_BINARY'), pg.url(@tls_databases.last), args)
      end
    end

    def shutdown(failed)
      [@server, *(@tls_servers || {}).values].compact.each do |server|
        server.stop
        warn "--- rio-server log ---\n#{server.log}" if failed
        server.remove_log
      end
      (@tls_databases || []).each { |name| pg.drop_database(name) }
      FileUtils.rm_rf(@certificates_dir) if @certificates_dir
      pg.drop_database(@database) if @database
      @pg&.close
    end
  end
end

Minitest.after_run do
  RioTest.shutdown(false)
end

# Integration tests: a fresh project and sender, and a receiver, per test.
class RioIntegrationTest < Minitest::Test
  EVENT = RioTest::EVENT

  def setup
    @server = RioTest.server
    @admin = RioTest.admin
    @sender = @admin.create_sender(@admin.create_project)
    @receiver = RioTest::Receiver.new
    @clients = []
  end

  def teardown
    @clients.each(&:close)
    @receiver&.close
    return if passed? || !@server

    # Shows what the server said around a failure.
    warn "--- rio-server log (tail) ---\n#{@server.log.lines.last(30).join}"
  end

  def client(dsn = @sender.dsn, **opts)
    c = RioClient::Client.new(dsn: dsn, **opts)
    @clients << c
    c
  end

  def dsn_for(scheme: 'rio', path: nil, port: nil, token: nil)
    "#{scheme}://#{@sender.name}:#{token || @sender.token}@127.0.0.1:#{port || @server.port}/" \
      "#{path || @sender.project}"
  end
end
