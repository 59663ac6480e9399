# frozen_string_literal: true

require_relative 'lib/rio_client/version'

Gem::Specification.new do |spec|
  spec.name = 'rio_client'
  spec.version = RioClient::VERSION
  spec.summary = "Rio's Ruby SDK: emit events into Rio and verify the webhooks it calls"
  spec.description = 'A client for the Rio webhook-dispatch server (gRPC, rio.v1) with idempotent, ' \
                     'retried emits, and Standard Webhooks signature verification for Rack and Rails receivers.'
  spec.authors = ['Rio developers']
  spec.required_ruby_version = '>= 2.7'

  spec.files = Dir['lib/**/*.rb'] + %w[README.md rio_client.gemspec]
  spec.require_paths = ['lib']

  spec.add_dependency 'google-protobuf', '>= 3.21', '< 4'
  spec.add_dependency 'grpc', '~> 1.51'
  spec.metadata['rubygems_mfa_required'] = 'true'
end
