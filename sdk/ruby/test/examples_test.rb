# frozen_string_literal: true

require 'test_helper'
require 'net/http'
require 'logger'
require 'stringio'

# The examples, run the way the README runs them: send.rb and the issue's
# snippet emit, the seed's receiver behind config.ru (rackup) gets the call;
# the seed's Rails controller with the helper.
class ExamplesTest < RioIntegrationTest
  def rackup(secret, output)
    pid = Process.spawn(RioTest.ruby_env('RIO_WEBHOOK_SECRET' => secret),
                        'rackup', '-s', 'webrick', '-o', '127.0.0.1', '-p', '0', 'config.ru',
                        chdir: RioTest::EXAMPLES_DIR, in: File::NULL, out: output, err: %i[child out])
    port = RioTest.wait_for(timeout: 30) { File.read(output)[/HTTPServer#start: pid=\d+ port=(\d+)/, 1] }
    raise "rackup did not start:\n#{File.read(output)}" unless port

    [pid, Integer(port)]
  end

  def stop(pid)
    Process.kill('INT', pid)
    Process.wait(pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end

  def test_seed_receiver_behind_the_middleware_gets_send_rb_and_the_snippet
    view = @admin.create_handler(@sender.project, 'http://127.0.0.1:9/not-yet', json: false)
    Dir.mktmpdir do |dir|
      output = File.join(dir, 'rackup.out')
      pid, port = rackup(view.secret, output)
      begin
        @admin.update_handler_url(view.id, "http://127.0.0.1:#{port}/webhook/comment/antispam")

        out = RioTest.run_ruby(['send.rb', '--ip', '10.0.0.7', '--content', 'free money'],
                               env: { 'RIO_DSN' => @sender.dsn })
        assert_match(/\Aemitted \h{8}-\h{4}-\h{4}-\h{4}-\h{12} to 1 handler\(s\)\n\z/, out)
        assert RioTest.wait_for { File.read(output).include?('banned 10.0.0.7') }, File.read(output)

        # The issue's Ruby usage, as a user would type it.
        snippet = "require 'rio_client'\n" \
                  "RioClient::Client.new(dsn: '#{@sender.dsn}')" \
                  ".emit('comment-published', ip: '127.0.0.1', content: 'I am a spammer')\n"
        RioTest.run_ruby(['-e', snippet])
        assert RioTest.wait_for { File.read(output).include?('banned 127.0.0.1') }, File.read(output)

        # Unsigned requests never reach the app.
        response = Net::HTTP.post_form(URI("http://127.0.0.1:#{port}/webhook/comment/antispam"),
                                       'ip' => '10.6.6.6', 'content' => 'I am a spammer')
        assert_equal '401', response.code
        assert_equal({ 'status' => 'error', 'error' => 'invalid webhook signature' }, JSON.parse(response.body))
        refute_includes File.read(output), 'banned 10.6.6.6'
      ensure
        stop(pid)
      end
    end
  end
end

# A stand-in for the part of ActionController::Base the seed's controller
# uses: callbacks, params, request, render, logger.
module ActionController
  class Base
    class << self
      def before_action(name, only: nil)
        (@before_actions ||= []) << [name, Array(only).map(&:to_sym)]
      end

      def before_actions
        @before_actions || []
      end

      def skip_forgery_protection; end
    end

    attr_reader :params, :request, :rendered, :logger

    def initialize(params, request, log)
      @params = params
      @request = request
      @logger = Logger.new(log)
    end

    def render(options)
      @rendered = options
    end

    # Runs the before_actions (a render halts the chain), then the action.
    def dispatch(action)
      self.class.before_actions.each do |name, only|
        next unless only.empty? || only.include?(action)

        send(name)
        return rendered if rendered
      end
      send(action)
      rendered
    end
  end
end

load File.join(RioTest::EXAMPLES_DIR, 'rails_controller.rb')

class RailsControllerExampleTest < Minitest::Test
  SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
  BODY = 'ip=127.0.0.1&content=I+am+a+spammer'

  Request = Struct.new(:env, :raw_post, :request_method, :query_string) do
    def headers
      Struct.new(:env).new(env)
    end
  end

  def dispatch(env)
    log = StringIO.new
    params = URI.decode_www_form(BODY).to_h.transform_keys(&:to_sym)
    controller = CommentsWebhookController.new(params, Request.new(env, BODY, 'POST', ''), log)
    [controller.dispatch(:antispam_comment), log.string]
  end

  def with_secret
    old = ENV.fetch('RIO_WEBHOOK_SECRET', nil)
    ENV['RIO_WEBHOOK_SECRET'] = SECRET
    yield
  ensure
    old ? ENV['RIO_WEBHOOK_SECRET'] = old : ENV.delete('RIO_WEBHOOK_SECRET')
  end

  def test_signed_call_runs_the_seed_action
    with_secret do
      ts = Time.now.to_i
      env = { 'HTTP_WEBHOOK_ID' => 'm1', 'HTTP_WEBHOOK_TIMESTAMP' => ts.to_s,
              'HTTP_WEBHOOK_SIGNATURE' => RioClient::Webhook.sign(SECRET, 'm1', ts, BODY) }
      rendered, log = dispatch(env)
      assert_equal({ json: { status: 'success', retval: 0 } }, rendered)
      assert_includes log, 'banned 127.0.0.1'
    end
  end

  def test_unsigned_call_is_refused_before_the_action
    with_secret do
      rendered, log = dispatch({})
      assert_equal({ json: { status: 'error', error: 'invalid webhook signature' }, status: :unauthorized }, rendered)
      refute_includes log, 'banned'
    end
  end
end
