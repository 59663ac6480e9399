# frozen_string_literal: true

# The original Rio's receiver as a Sinatra app: the seed's antispam_comment,
# run by config.ru behind RioClient::Webhook::Middleware.
require 'json'
require 'sinatra/base'

class AntispamApp < Sinatra::Base
  SPAM_WORDS = ['spammer', 'casino', 'free money'].freeze

  helpers do
    def spam_content?(content)
      SPAM_WORDS.any? { |word| content.to_s.downcase.include?(word) }
    end

    def ban_ip(ip)
      $stdout.puts "banned #{ip}"
      $stdout.flush
    end
  end

  post '/webhook/comment/antispam' do
    ban_ip(params[:ip]) if spam_content?(params[:content])
    content_type :json
    JSON.generate(status: 'success', retval: 0)
  end
end
