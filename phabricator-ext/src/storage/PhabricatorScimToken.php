<?php

/**
 * A bearer token the identity provider presents to the SCIM service
 * (`scim_token`). Only the argon2id hash of its secret is stored; see
 * @{class:PhabricatorScimTokenEngine} for the token format.
 */
final class PhabricatorScimToken extends PhabricatorScimDAO {

  const STATE_ACTIVE = 'active';
  const STATE_EXPIRING = 'expiring';
  const STATE_EXPIRED = 'expired';
  const STATE_REVOKED = 'revoked';

  protected $label;
  protected $botPHID;
  protected $tokenHash;
  protected $issuedByPHID;
  protected $dateExpires;
  protected $dateLastUsed;
  protected $dateRevoked;

  private $bot = self::ATTACHABLE;

  protected function getConfiguration() {
    return array(
      self::CONFIG_COLUMN_SCHEMA => array(
        'label' => 'text128',
        'tokenHash' => 'text255',
        'issuedByPHID' => 'phid?',
        'dateExpires' => 'epoch?',
        'dateLastUsed' => 'epoch?',
        'dateRevoked' => 'epoch?',
      ),
      self::CONFIG_KEY_SCHEMA => array(
        'key_bot' => array(
          'columns' => array('botPHID'),
        ),
      ),
    ) + parent::getConfiguration();
  }

  public function attachBot(PhabricatorUser $bot = null) {
    $this->bot = $bot;
    return $this;
  }

  /**
   * @return PhabricatorUser|null The bot, or null if it no longer exists.
   */
  public function getBot() {
    return $this->assertAttached($this->bot);
  }

  public function getState($now) {
    if ($this->getDateRevoked() !== null) {
      return self::STATE_REVOKED;
    }

    $expires = $this->getDateExpires();
    if ($expires !== null) {
      if ($expires <= $now) {
        return self::STATE_EXPIRED;
      }
      return self::STATE_EXPIRING;
    }

    return self::STATE_ACTIVE;
  }

  /**
   * Whether the service would accept this token (ignoring the bot's state).
   */
  public function isUsable($now) {
    $state = $this->getState($now);
    return ($state == self::STATE_ACTIVE) || ($state == self::STATE_EXPIRING);
  }

  public static function getStateName($state) {
    $map = array(
      self::STATE_ACTIVE => pht('Active'),
      self::STATE_EXPIRING => pht('Expiring'),
      self::STATE_EXPIRED => pht('Expired'),
      self::STATE_REVOKED => pht('Revoked'),
    );
    return idx($map, $state, $state);
  }

  public static function getStateColor($state) {
    $map = array(
      self::STATE_ACTIVE => PHUITagView::COLOR_GREEN,
      self::STATE_EXPIRING => PHUITagView::COLOR_ORANGE,
      self::STATE_EXPIRED => PHUITagView::COLOR_GREY,
      self::STATE_REVOKED => PHUITagView::COLOR_RED,
    );
    return idx($map, $state, PHUITagView::COLOR_GREY);
  }

  /**
   * Whether a usable token is older than the configured rotation period.
   */
  public function isDueForRotation($now) {
    if (!$this->isUsable($now)) {
      return false;
    }

    // A token in its grace period has already been rotated.
    if ($this->getDateExpires() !== null) {
      return false;
    }

    $days = PhabricatorEnv::getEnvConfig('scim.token-rotation-days');
    if (!$days) {
      return false;
    }

    $age = $now - $this->getDateCreated();
    return ($age > phutil_units($days.' days in seconds'));
  }

}
