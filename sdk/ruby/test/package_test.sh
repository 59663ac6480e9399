#!/usr/bin/env bash
# Packaging test: builds the gem with `gem build`, installs it with
# `gem install --local` into a fresh GEM_HOME (grpc and google-protobuf come
# from Debian's ruby-grpc / ruby-google-protobuf), then requires the installed
# gem and runs the signature tests and one real emit with it (the emit needs
# $RIO_SERVER_BINARY; ctest sets it).
set -euo pipefail

sdk="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d /tmp/rio-sdk-ruby-package.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# Build from a copy so that no .gem file appears in the tree.
mkdir "$work/src"
cp -r "$sdk/lib" "$sdk/rio_client.gemspec" "$sdk/README.md" "$work/src/"
(cd "$work/src" && gem build --quiet rio_client.gemspec >/dev/null)
export GEM_HOME="$work/gems"
gem install --local --no-document --quiet "$work/src/rio_client-"*.gem
unset RUBYLIB

cd "$work"  # not the source tree: require must find the installed gem
ruby -e '
  require "rio_client"
  require "rio_client/v1/project_services_pb"
  spec = Gem.loaded_specs.fetch("rio_client")
  abort "rio_client loaded from #{spec.full_gem_path}" unless spec.full_gem_path.start_with?(ENV["GEM_HOME"])
  top = Dir.children(File.join(spec.full_gem_path, "lib")).sort
  abort "unexpected top-level files #{top}" unless top == ["rio_client", "rio_client.rb"]
  RioClient::Client.new(dsn: "http://sender:token@127.0.0.1:1/1/project").close
  puts "installed rio_client #{RioClient::VERSION} at #{spec.full_gem_path}"
'

# The signature tests and one emit through the real server, with the
# installed gem (no -Ilib).
cp -r "$sdk/test" "$work/test"
ruby -Itest -e 'require "./test/webhook_test.rb"; require "./test/emit_test.rb"' -- \
  -n "/WebhookTest|test_emit_lands_at_a_real_receiver_signed/"
