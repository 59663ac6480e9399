# frozen_string_literal: true

require 'grpc'

module RioClient
  # Base class of every error raised by rio_client.
  #
  # A failed call raises the subclass named after its gRPC status code
  # (Unauthenticated, Unavailable, ...); the original GRPC::BadStatus is kept
  # as #grpc_error and as #cause. Errors found before any network call (a
  # malformed DSN) raise InvalidDSN.
  class Error < StandardError
    # The gRPC status code (GRPC::Core::StatusCodes) this class stands for;
    # nil for errors that did not come from the server.
    def self.code
      nil
    end

    # The original GRPC::BadStatus, or nil.
    attr_reader :grpc_error
    # How many times the call was tried (retries included), or nil when no
    # call was made.
    attr_reader :attempts

    def initialize(message = nil, grpc_error: nil, attempts: nil)
      super(message)
      @grpc_error = grpc_error
      @attempts = attempts
    end

    def code
      self.class.code
    end
  end

  codes = GRPC::Core::StatusCodes
  {
    Cancelled: codes::CANCELLED,
    Unknown: codes::UNKNOWN,
    InvalidArgument: codes::INVALID_ARGUMENT,
    DeadlineExceeded: codes::DEADLINE_EXCEEDED,
    NotFound: codes::NOT_FOUND,
    AlreadyExists: codes::ALREADY_EXISTS,
    PermissionDenied: codes::PERMISSION_DENIED,
    ResourceExhausted: codes::RESOURCE_EXHAUSTED,
    FailedPrecondition: codes::FAILED_PRECONDITION,
    Aborted: codes::ABORTED,
    OutOfRange: codes::OUT_OF_RANGE,
    Unimplemented: codes::UNIMPLEMENTED,
    Internal: codes::INTERNAL,
    Unavailable: codes::UNAVAILABLE,
    DataLoss: codes::DATA_LOSS,
    Unauthenticated: codes::UNAUTHENTICATED
  }.each do |name, value|
    klass = Class.new(Error) { define_singleton_method(:code) { value } }
    const_set(name, klass)
  end

  # The DSN is missing or malformed; raised before any network call.
  class InvalidDSN < InvalidArgument
    def self.code
      nil
    end
  end

  # A call on a client after #close.
  class ClientClosed < Error; end

  # A webhook request whose signature or timestamp does not verify.
  class WebhookVerificationError < Error; end

  CODE_NAMES = GRPC::Core::StatusCodes.constants.to_h do |name|
    [GRPC::Core::StatusCodes.const_get(name), name.to_s]
  end.freeze
  ERRORS_BY_CODE = constants.map { |c| const_get(c) }
                            .select { |c| c.is_a?(Class) && c < Error && c.code && c != InvalidDSN }
                            .to_h { |c| [c.code, c] }.freeze
  private_constant :ERRORS_BY_CODE, :CODE_NAMES

  # The RioClient::Error for a failed call. Raise it inside the rescue of
  # +grpc_error+ so that it becomes the #cause.
  def self.error_from_grpc(grpc_error, attempts: nil)
    klass = ERRORS_BY_CODE.fetch(grpc_error.code, Unknown)
    details = grpc_error.details.to_s
    message = "#{CODE_NAMES.fetch(grpc_error.code, 'UNKNOWN')}: #{details.empty? ? 'no details' : details}"
    message += " (after #{attempts} attempts)" if attempts && attempts > 1
    klass.new(message, grpc_error: grpc_error, attempts: attempts)
  end
end
