# frozen_string_literal: true

require 'test_helper'
require 'minitest/mock'

# DSN parsing and how a client finds its DSN. Malformed DSNs fail in the
# constructor, before any channel exists; no server involved.
class DSNTest < Minitest::Test
  VALID = [
    ['rio://app:tok@127.0.0.1:50051/comments', 'rio', false, '127.0.0.1', 50_051, 'app', 'tok', 'comments'],
    ['rios://app:tok@rio.example.org:443/comments', 'rios', true, 'rio.example.org', 443, 'app', 'tok', 'comments'],
    # The seed's form: scheme http, "/1/" before the project, no port.
    ['http://sender:tok@rio.intra.example.org/1/project', 'http', false, 'rio.intra.example.org', 50_051, 'sender',
     'tok', 'project'],
    ['https://sender:tok@rio.intra.example.org/1/project', 'https', true, 'rio.intra.example.org', 50_051, 'sender',
     'tok', 'project'],
    ['http://s:t@h:8443/a/b/c/project/', 'http', false, 'h', 8443, 's', 't', 'project'],
    ['RIO://app:tok@H.Example.ORG/p', 'rio', false, 'h.example.org', 50_051, 'app', 'tok', 'p'],
    ['rio://a.b_c-d:t%2Fk%40@[::1]:7/x.y_z-1', 'rio', false, '::1', 7, 'a.b_c-d', 't/k@', 'x.y_z-1'],
    ["  rio://app:tok@h/p\n", 'rio', false, 'h', 50_051, 'app', 'tok', 'p']
  ].freeze

  MALFORMED = {
    '' => 'empty',
    'app:s3cr3t@h/p' => 'no scheme',
    'ftp://app:s3cr3t@h/p' => 'scheme "ftp"',
    'rio://h:50051/p' => 'no sender name',
    'rio://app@h/p' => 'no token',
    'rio://app:@h/p' => 'no token',
    'rio://app:s3cr3t@/p' => 'no host',
    'rio://app:s3cr3t@h:0/p' => 'port 0',
    'rio://app:s3cr3t@h:65536/p' => 'port 65536',
    'rio://app:s3cr3t@h:http/p' => 'invalid port',
    'rio://app:s3cr3t@h:/p' => 'empty port',
    'rio://app:s3cr3t@h' => 'names no project',
    'rio://app:s3cr3t@h//' => 'names no project',
    'rio://app:s3cr3t@h/has space' => 'names project "has space"',
    'rio://app:s3cr3t@s3cr3t@h/has space' => 'names project "has space"',
    'rio://app:s3cr3t@h/p?timeout=1' => 'query or fragment',
    'rio://app:s3cr3t@h/p#x' => 'query or fragment',
    'rio://bad name:s3cr3t@h/p' => 'sender name "bad name"',
    'rio://me@corp:s3cr3t@h/p' => 'sender name "me@corp"',
    'rio://app:s3cr3t@[::1/p' => 'malformed host'
  }.freeze

  def test_valid_dsns
    VALID.each do |text, scheme, tls, host, port, sender, token, project|
      dsn = RioClient::DSN.parse(text)
      assert_equal [scheme, tls, host, port, sender, token, project],
                   [dsn.scheme, dsn.tls?, dsn.host, dsn.port, dsn.sender, dsn.token, dsn.project], text
    end
  end

  def test_target_brackets_ipv6
    assert_equal '[::1]:7', RioClient::DSN.parse('rio://a:b@[::1]:7/p').target
    assert_equal 'h:50051', RioClient::DSN.parse('rio://a:b@h/p').target
  end

  def test_to_s_and_inspect_hide_the_token
    dsn = RioClient::DSN.parse('rio://app:s3cr3t@h:1/p')
    assert_equal 'rio://app:***@h:1/p', dsn.to_s
    refute_includes dsn.inspect, 's3cr3t'
    refute_includes RioClient::Client.new('rio://app:s3cr3t@h:1/p').inspect, 's3cr3t'
  end

  def test_malformed_dsns_are_clear_errors
    MALFORMED.each do |text, message|
      error = assert_raises(RioClient::InvalidDSN, text) { RioClient::DSN.parse(text) }
      assert_includes error.message, message, text
      refute_includes error.message, 's3cr3t'
      assert_kind_of RioClient::InvalidArgument, error
      assert_kind_of RioClient::Error, error
    end
    assert_raises(RioClient::InvalidDSN) { RioClient::DSN.parse(nil) }
  end

  def test_client_rejects_malformed_dsns_before_any_network_call
    forbidden = ->(*) { flunk 'a channel was created for a malformed DSN' }
    GRPC::Core::Channel.stub(:new, forbidden) do
      MALFORMED.each do |text, message|
        error = assert_raises(RioClient::InvalidDSN, text) { RioClient::Client.new(dsn: text) }
        assert_includes error.message, message
        assert_raises(RioClient::InvalidDSN, text) { RioClient::Client.new(text) }
      end
    end
  end

  def with_env(name, value)
    old = ENV.fetch(name, nil)
    value.nil? ? ENV.delete(name) : ENV[name] = value
    yield
  ensure
    old.nil? ? ENV.delete(name) : ENV[name] = old
  end

  def test_client_takes_the_dsn_every_way
    with_env('RIO_DSN', 'rio://env:t@env-host/env-project') do
      assert_equal 'positional', RioClient::Client.new('rio://a:t@h/positional').project
      assert_equal 'keyword', RioClient::Client.new(dsn: 'rio://a:t@h/keyword').project
      assert_equal 'seed', RioClient::Client.new(dsn: 'http://a:t@h/1/seed').project
      assert_equal 'env-project', RioClient::Client.new.project
    end
  end

  def test_no_dsn_anywhere_is_a_clear_error
    with_env('RIO_DSN', nil) do
      error = assert_raises(RioClient::InvalidDSN) { RioClient::Client.new }
      assert_match(/no DSN: pass Client.new.*or set RIO_DSN/, error.message)
    end
    with_env('RIO_DSN', '') { assert_raises(RioClient::InvalidDSN) { RioClient::Client.new } }
    with_env('RIO_DSN', 'rio://app:s3cr3t@h') do
      assert_match(/names no project/, assert_raises(RioClient::InvalidDSN) { RioClient::Client.new }.message)
    end
  end

  def test_bad_options_are_refused
    assert_raises(ArgumentError) { RioClient::Client.new('rio://a:t@h/p', dsn: 'rio://a:t@h/q') }
    assert_raises(ArgumentError) { RioClient::Client.new('rio://a:t@h/p', timeout: 0) }
    assert_raises(ArgumentError) { RioClient::Client.new('rio://a:t@h/p', retry_policy: 3) }
  end
end
