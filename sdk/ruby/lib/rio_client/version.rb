# frozen_string_literal: true

module RioClient
  VERSION = '0.1.0'
end
