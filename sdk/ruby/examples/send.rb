# frozen_string_literal: true

# Emits the seed's event into Rio.
#
#   RIO_DSN='rio://comments-app:TOKEN@127.0.0.1:50051/comments' ruby send.rb
#   ruby send.rb --dsn 'http://comments-app:TOKEN@127.0.0.1:50051/1/comments' --ip 10.0.0.7 --content 'free money'
#
# The DSN is the "dsn" of rio.v1.ProjectService/CreateSender's reply.
require 'optparse'
begin
  require 'rio_client'
rescue LoadError # running from the source tree, gem not installed
  require_relative '../lib/rio_client'
end

options = { event: 'comment-published', ip: '127.0.0.1', content: 'I am a spammer' }
OptionParser.new do |o|
  o.banner = 'usage: ruby send.rb [--dsn DSN] [--event EVENT] [--ip IP] [--content TEXT]'
  o.on('--dsn DSN', 'sender DSN (default: $RIO_DSN)') { |v| options[:dsn] = v }
  o.on('--event EVENT') { |v| options[:event] = v }
  o.on('--ip IP') { |v| options[:ip] = v }
  o.on('--content TEXT') { |v| options[:content] = v }
end.parse!

begin
  client = RioClient::Client.new(dsn: options[:dsn])
  result = client.emit(options[:event], ip: options[:ip], content: options[:content])
rescue RioClient::Error => e
  abort "send.rb: #{e.message}"
ensure
  client&.close
end
puts "emitted #{result.message_id} to #{result.handlers} handler(s)#{' (duplicate)' if result.duplicate?}"
