<?php

/**
 * Issues, rotates and revokes SCIM tokens, and creates (or reuses) the bot
 * account they belong to.
 *
 * A token reads `phscim-<id>-<secret>`: `<id>` is the decimal
 * `scim_token.id`, `<secret>` is 40 characters of `[a-z2-7]`. Only
 * `password_hash(<secret>, PASSWORD_ARGON2ID)` is stored, which the Rust
 * service verifies; the plaintext is returned once and never stored or
 * logged.
 */
final class PhabricatorScimTokenEngine extends Phobject {

  const TOKEN_PREFIX = 'phscim';
  const SECRET_LENGTH = 40;
  const PLACEHOLDER_DOMAIN = 'scim.invalid';
  const BOT_REAL_NAME = 'SCIM Provisioning';

  private $viewer;

  public function setViewer(PhabricatorUser $viewer) {
    $this->viewer = $viewer;
    return $this;
  }

  public function getViewer() {
    if (!$this->viewer) {
      throw new PhutilInvalidStateException('setViewer');
    }
    return $this->viewer;
  }


/* -(  Token Format  )------------------------------------------------------- */


  public static function formatToken($id, $secret) {
    return self::TOKEN_PREFIX.'-'.(int)$id.'-'.$secret;
  }

  /**
   * @return pair<int, string>|null Token ID and secret, or null if the
   *   string is not shaped like a SCIM token.
   */
  public static function parseToken($token) {
    $pattern = '/^'.self::TOKEN_PREFIX.'-([1-9][0-9]*)-([a-z2-7]{'.
      self::SECRET_LENGTH.'})\z/';

    $matches = null;
    if (!preg_match($pattern, $token, $matches)) {
      return null;
    }

    return array((int)$matches[1], $matches[2]);
  }

  public static function hashSecret($secret) {
    if (!defined('PASSWORD_ARGON2ID')) {
      throw new Exception(
        pht(
          'This PHP was built without Argon2 support, which SCIM tokens '.
          'require (constant "%s" is not defined).',
          'PASSWORD_ARGON2ID'));
    }

    // NOTE: OWASP's floor for argon2id, not PHP's defaults (65536 KiB, 4
    // passes). The secret is 200 random bits, so memory-hardness buys
    // nothing against guessing; the Rust service pays for every check (one
    // 19 MiB allocation instead of 64 MiB, its peak memory). It writes the
    // same parameters when it issues a token, and verifies any argon2id PHC
    // string, so older hashes at PHP's defaults keep working. Anything that
    // calls password_needs_rehash() on these hashes must pass these options:
    // with PHP's defaults it would report every one as needing a rehash.
    $hash = password_hash(
      $secret,
      PASSWORD_ARGON2ID,
      array(
        'memory_cost' => 19456,
        'time_cost' => 2,
        'threads' => 1,
      ));

    if (!is_string($hash)) {
      throw new Exception(pht('Unable to hash the SCIM token secret.'));
    }

    return $hash;
  }

  public static function verifySecret($secret, $hash) {
    return password_verify($secret, $hash);
  }


/* -(  Bot Account  )-------------------------------------------------------- */


  public static function getBotUsername() {
    return PhabricatorEnv::getEnvConfig('scim.bot-username');
  }

  public static function getBotEmailAddress() {
    $domain = PhabricatorEnv::getEnvConfig('scim.bot-email-domain');

    if (!strlen((string)$domain)) {
      $base_uri = PhabricatorEnv::getEnvConfig('phabricator.base-uri');
      if (strlen((string)$base_uri)) {
        $domain = id(new PhutilURI($base_uri))->getDomain();
      }
    }

    if (!strlen((string)$domain)) {
      $domain = self::PLACEHOLDER_DOMAIN;
    }

    return self::getBotUsername().'@'.$domain;
  }

  public function loadBot() {
    return id(new PhabricatorPeopleQuery())
      ->setViewer(PhabricatorUser::getOmnipotentUser())
      ->withUsernames(array(self::getBotUsername()))
      ->executeOne();
  }

  /**
   * Load the SCIM bot, creating it through Phorge's own user editor the way
   * People > Create New User does for a bot: approved, verified email,
   * system agent, never an administrator.
   */
  public function loadOrCreateBot() {
    $bot = $this->loadBot();
    if ($bot) {
      $this->assertUsableBot($bot);
      return $bot;
    }

    $actor = $this->getViewer();

    // NOTE: PhabricatorUserEditor checks these too, but with a generic
    // exception; say which setting to change.
    $address = self::getBotEmailAddress();
    if (!PhabricatorUserEmail::isValidAddress($address) ||
        !PhabricatorUserEmail::isAllowedAddress($address)) {
      throw new PhabricatorScimTokenException(
        pht(
          'The SCIM bot can not be created with the email address "%s". '.
          'Set "%s" to a domain this install accepts. %s',
          $address,
          'scim.bot-email-domain',
          PhabricatorUserEmail::describeAllowedAddresses()));
    }

    $bot = id(new PhabricatorUser())
      ->setUsername(self::getBotUsername())
      ->setRealName(self::BOT_REAL_NAME)
      ->setIsApproved(1);

    $email = id(new PhabricatorUserEmail())
      ->setAddress($address)
      ->setIsVerified(1);

    id(new PhabricatorUserEditor())
      ->setActor($actor)
      ->createNewUser($bot, $email);

    id(new PhabricatorUserEditor())
      ->setActor($actor)
      ->makeSystemAgentUser($bot, true);

    return $bot;
  }

  private function assertUsableBot(PhabricatorUser $bot) {
    $username = $bot->getUsername();

    if (!$bot->getIsSystemAgent()) {
      throw new PhabricatorScimTokenException(
        pht(
          'The account "%s" exists but is not a bot. SCIM tokens belong to '.
          'a bot account: choose another username with "%s".',
          $username,
          'scim.bot-username'));
    }

    if ($bot->getIsAdmin()) {
      throw new PhabricatorScimTokenException(
        pht(
          'The bot account "%s" is an administrator. The SCIM bot must '.
          'not be an administrator.',
          $username));
    }

    if ($bot->getIsDisabled()) {
      throw new PhabricatorScimTokenException(
        pht(
          'The bot account "%s" is disabled, so its SCIM tokens would not '.
          'authenticate. Enable it first.',
          $username));
    }
  }


/* -(  Issue, Rotate, Revoke  )---------------------------------------------- */


  /**
   * @return pair<PhabricatorScimToken, string> The new token row and the
   *   plaintext token, to show once.
   */
  public function issueToken($label) {
    $bot = $this->loadOrCreateBot();

    list($token, $secret) = $this->newToken($bot, $label);
    $token->save();

    return array($token, self::formatToken($token->getID(), $secret));
  }

  /**
   * Issue a new token for the same bot and let the old one expire after the
   * grace period.
   *
   * @param PhabricatorScimToken Token to rotate.
   * @param int Seconds the old token keeps working; 0 ends it now.
   * @return pair<PhabricatorScimToken, string> New token and its plaintext.
   */
  public function rotateToken(PhabricatorScimToken $old, $grace) {
    $now = PhabricatorTime::getNow();
    if (!$old->isUsable($now)) {
      throw new PhabricatorScimTokenException(
        pht(
          'Token %d is %s; only a usable token can be rotated.',
          $old->getID(),
          PhabricatorScimToken::getStateName($old->getState($now))));
    }

    $bot = $this->loadOrCreateBot();
    if ($bot->getPHID() !== $old->getBotPHID()) {
      $bot = id(new PhabricatorPeopleQuery())
        ->setViewer(PhabricatorUser::getOmnipotentUser())
        ->withPHIDs(array($old->getBotPHID()))
        ->executeOne();
      if (!$bot) {
        throw new PhabricatorScimTokenException(
          pht('The bot account of token %d no longer exists.', $old->getID()));
      }
      $this->assertUsableBot($bot);
    }

    $expires = $now + max(0, (int)$grace);

    list($new, $secret) = $this->newToken($bot, $old->getLabel());

    $old->openTransaction();
      $old->beginWriteLocking();
        $old->reload();

        $current = $old->getDateExpires();
        if ($current === null || $current > $expires) {
          $old->setDateExpires($expires);
        }
        $old->save();

        $new->save();

      $old->endWriteLocking();
    $old->saveTransaction();

    return array($new, self::formatToken($new->getID(), $secret));
  }

  public function revokeToken(PhabricatorScimToken $token) {
    if ($token->getDateRevoked() === null) {
      $token
        ->setDateRevoked(PhabricatorTime::getNow())
        ->save();
    }
    return $token;
  }

  private function newToken(PhabricatorUser $bot, $label) {
    $label = trim($label);
    if (!strlen($label)) {
      $label = pht('SCIM Token');
    }

    if (strlen($label) > 128) {
      throw new PhabricatorScimTokenException(
        pht('Token labels may be at most 128 bytes long.'));
    }

    $secret = Filesystem::readRandomCharacters(self::SECRET_LENGTH);

    // NOTE: The hash covers the secret only, so it can be computed before
    // the row (and so the ID in the token) exists; the row is never visible
    // without its hash.
    $token = id(new PhabricatorScimToken())
      ->setLabel($label)
      ->setBotPHID($bot->getPHID())
      ->setIssuedByPHID($this->getViewer()->getPHID())
      ->setTokenHash(self::hashSecret($secret));

    return array($token, $secret);
  }

}
