# frozen_string_literal: true

# The seed's Rails receiver, with Rio's signature checked before the action.
#
#   # config/routes.rb
#   post '/webhook/comment/antispam', to: 'comments_webhook#antispam_comment'
#
#   # Gemfile
#   gem 'rio_client'
#
# The secret is ENV['RIO_WEBHOOK_SECRET'] (the "secret" of CreateHandler's
# reply); override rio_webhook_secret to read it from credentials instead.
class CommentsWebhookController < ActionController::Base
  include RioClient::Webhook::ControllerHelpers

  skip_forgery_protection # Rio's calls carry a signature, not a CSRF token
  verify_rio_webhook only: :antispam_comment

  def antispam_comment
    ban_ip(params[:ip]) if is_spam_content(params[:content])
    render :json => {:status => 'success', :retval => 0}
  end

  private

  SPAM_WORDS = ['spammer', 'casino', 'free money'].freeze

  def is_spam_content(content)
    SPAM_WORDS.any? { |word| content.to_s.downcase.include?(word) }
  end

  def ban_ip(ip)
    logger.info("banned #{ip}")
  end
end
