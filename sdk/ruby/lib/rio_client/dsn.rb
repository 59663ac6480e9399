# frozen_string_literal: true

require 'uri'
require_relative 'errors'

module RioClient
  # A sender DSN: where Rio is and which credential emits into which project.
  #
  #   rio://SENDER:TOKEN@HOST:PORT/PROJECT      plaintext gRPC
  #   rios://SENDER:TOKEN@HOST:PORT/PROJECT     gRPC over TLS
  #   http://SENDER:TOKEN@HOST/1/PROJECT        the original Rio's form: http is
  #   https://SENDER:TOKEN@HOST/1/PROJECT       plaintext, https is TLS
  #
  # The last path segment is the project; the port defaults to 50051. #to_s
  # and #inspect never show the token.
  class DSN
    DEFAULT_PORT = 50_051
    PLAINTEXT_SCHEMES = %w[rio http].freeze
    TLS_SCHEMES = %w[rios https].freeze
    NAME = /\A[A-Za-z0-9._-]{1,128}\z/.freeze
    FORM = 'rio://SENDER:TOKEN@HOST:PORT/PROJECT'
    URL = %r{\A(?<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?<authority>[^/?#]*)(?<path>[^?#]*)(?<rest>[?#].*)?\z}m.freeze
    HOST_PORT = /\A(?:\[(?<ipv6>[0-9A-Fa-f:.]+)\]|(?<host>[^:\[\]]*))(?::(?<port>[^:]*))?\z/.freeze

    attr_reader :scheme, :host, :port, :sender, :token, :project

    # Parses +text+; raises InvalidDSN naming what is wrong (never the token).
    def self.parse(text)
      unless text.is_a?(String)
        raise InvalidDSN, "a DSN must be a String like #{FORM}, not #{text.class}"
      end

      text = text.strip
      raise InvalidDSN, "the DSN is empty; expected #{FORM}" if text.empty?

      shown = redact(text)
      raise InvalidDSN, "DSN #{shown.inspect} has no scheme; expected #{FORM}" unless text.include?('://')

      m = URL.match(text) or raise InvalidDSN, "DSN #{shown.inspect} is not a URL; expected #{FORM}"
      scheme = m[:scheme].downcase
      unless PLAINTEXT_SCHEMES.include?(scheme) || TLS_SCHEMES.include?(scheme)
        raise InvalidDSN, "DSN #{shown.inspect} has scheme #{m[:scheme].inspect}; use rio:// or " \
                          'http:// (plaintext), rios:// or https:// (TLS)'
      end
      raise InvalidDSN, "DSN #{shown.inspect} may not have a query or fragment; expected #{FORM}" if m[:rest]

      userinfo, at, hostport = m[:authority].rpartition('@')
      raise InvalidDSN, "DSN #{shown.inspect} has no sender name; expected #{FORM}" if at.empty? || userinfo.empty?

      sender, colon, token = userinfo.partition(':')
      raise InvalidDSN, "DSN #{shown.inspect} has no sender name; expected #{FORM}" if sender.empty?
      if colon.empty? || token.empty?
        raise InvalidDSN, "DSN #{shown.inspect} has no token after the sender name; expected #{FORM}"
      end

      sender = unescape(sender)
      token = unescape(token)
      unless NAME.match?(sender)
        raise InvalidDSN, "DSN #{shown.inspect} has sender name #{sender.inspect}; " \
                          "use 1-128 letters, digits, '.', '_' or '-'"
      end

      hp = HOST_PORT.match(hostport) or raise InvalidDSN, "DSN #{shown.inspect} has a malformed host; expected #{FORM}"
      host = (hp[:ipv6] || hp[:host]).downcase
      raise InvalidDSN, "DSN #{shown.inspect} has no host; expected #{FORM}" if host.empty?

      port = parse_port(hp[:port], shown)
      segments = m[:path].split('/').reject(&:empty?)
      if segments.empty?
        raise InvalidDSN, "DSN #{shown.inspect} names no project (the last path segment); expected #{FORM}"
      end

      project = unescape(segments.last)
      unless NAME.match?(project)
        raise InvalidDSN, "DSN #{shown.inspect} names project #{project.inspect}; " \
                          "use 1-128 letters, digits, '.', '_' or '-'"
      end
      new(scheme: scheme, host: host, port: port, sender: sender, token: token, project: project)
    end

    def self.parse_port(text, shown)
      return DEFAULT_PORT if text.nil?
      raise InvalidDSN, "DSN #{shown.inspect} has an empty port; use 1-65535 or leave it out" if text.empty?
      raise InvalidDSN, "DSN #{shown.inspect} has an invalid port; use 1-65535" unless /\A\d{1,5}\z/.match?(text)

      port = Integer(text, 10)
      raise InvalidDSN, "DSN #{shown.inspect} has port #{port}; use 1-65535" unless (1..65_535).cover?(port)

      port
    end

    # +text+ with the token of a DSN-looking string replaced by ***. As when
    # the DSN is parsed, the sender runs to the first ':' and the token to
    # the last '@' before any '/', so that a token is hidden whole even when
    # it or the sender has an '@' in it.
    def self.redact(text)
      text.sub(%r{((?:\A|://)[^:/]*:)[^/]*@}, '\1***@')
    end

    def self.unescape(text)
      URI::DEFAULT_PARSER.unescape(text)
    end
    private_class_method :parse_port, :unescape

    def initialize(scheme:, host:, port:, sender:, token:, project:)
      @scheme = scheme
      @host = host
      @port = port
      @sender = sender
      @token = token
      @project = project
      freeze
    end

    def tls?
      TLS_SCHEMES.include?(scheme)
    end

    # host:port as gRPC takes it (IPv6 literals in brackets).
    def target
      "#{host.include?(':') ? "[#{host}]" : host}:#{port}"
    end

    def to_s
      "#{scheme}://#{sender}:***@#{target}/#{project}"
    end

    def inspect
      "#<RioClient::DSN #{self}>"
    end

    def ==(other)
      other.is_a?(DSN) && [scheme, host, port, sender, token, project] ==
                          [other.scheme, other.host, other.port, other.sender, other.token, other.project]
    end
  end
end
