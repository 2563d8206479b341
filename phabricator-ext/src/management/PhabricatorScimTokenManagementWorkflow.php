<?php

/**
 * `bin/user scim-token issue|rotate|revoke|list`: manage SCIM tokens from
 * automation. A new token is printed alone on the last line of stdout; all
 * other messages go to stderr.
 */
final class PhabricatorScimTokenManagementWorkflow
  extends PhabricatorPeopleManagementWorkflow {

  protected function didConstruct() {
    $this
      ->setName('scim-token')
      ->setExamples(
        "**scim-token** issue [--label __label__]\n".
        "**scim-token** rotate --id __id__ [--grace-hours __hours__]\n".
        "**scim-token** revoke --id __id__\n".
        "**scim-token** list")
      ->setSynopsis(
        pht(
          'Issue, rotate, revoke or list the tokens the identity provider '.
          'uses to authenticate to the SCIM service. New tokens are printed '.
          'alone on the last line of stdout.'))
      ->setArguments(
        array(
          array(
            'name' => 'label',
            'param' => 'label',
            'help' => pht(
              'With "issue": label of the new token (default "%s").',
              pht('Identity Provider')),
          ),
          array(
            'name' => 'id',
            'param' => 'id',
            'help' => pht('With "rotate" or "revoke": the token to act on.'),
          ),
          array(
            'name' => 'grace-hours',
            'param' => 'hours',
            'help' => pht(
              'With "rotate": hours the old token keeps working (default: '.
              'config "%s"; 0 ends it now).',
              'scim.token-grace-hours'),
          ),
          array(
            'name' => 'action',
            'wildcard' => true,
          ),
        ));
  }

  public function execute(PhutilArgumentParser $args) {
    $action = $args->getArg('action');
    if (count($action) !== 1) {
      throw new PhutilArgumentUsageException(
        pht(
          'Choose exactly one action: %s.',
          'issue, rotate, revoke, list'));
    }
    $action = head($action);

    switch ($action) {
      case 'issue':
        return $this->executeIssue($args);
      case 'rotate':
        return $this->executeRotate($args);
      case 'revoke':
        return $this->executeRevoke($args);
      case 'list':
        return $this->executeList($args);
    }

    throw new PhutilArgumentUsageException(
      pht(
        'Unknown action "%s". Choose one of: %s.',
        $action,
        'issue, rotate, revoke, list'));
  }

  private function newEngine() {
    return id(new PhabricatorScimTokenEngine())
      ->setViewer($this->getViewer());
  }

  private function executeIssue(PhutilArgumentParser $args) {
    $label = $args->getArg('label');
    if ($label === null) {
      $label = pht('Identity Provider');
    }

    list($token, $plaintext) = $this->newEngine()->issueToken($label);

    $this->logOkay(
      pht('ISSUED'),
      pht(
        'Issued token %d ("%s") for bot "%s". It is shown once, below.',
        $token->getID(),
        $token->getLabel(),
        PhabricatorScimTokenEngine::getBotUsername()));

    $this->printToken($plaintext);

    return 0;
  }

  private function executeRotate(PhutilArgumentParser $args) {
    $token = $this->loadTokenFromArguments($args);

    $grace_hours = $args->getArg('grace-hours');
    if ($grace_hours === null) {
      $grace_hours = PhabricatorEnv::getEnvConfig('scim.token-grace-hours');
    } else if (!preg_match('/^\d+\z/', $grace_hours)) {
      throw new PhutilArgumentUsageException(
        pht('"--grace-hours" must be a non-negative integer.'));
    }
    $grace = (int)$grace_hours * phutil_units('1 hour in seconds');

    list($new, $plaintext) = $this->newEngine()->rotateToken($token, $grace);

    $this->logOkay(
      pht('ROTATED'),
      pht(
        'Issued token %d to replace token %d, which stops working at %s.',
        $new->getID(),
        $token->getID(),
        date('Y-m-d H:i:s T', $token->getDateExpires())));

    $this->printToken($plaintext);

    return 0;
  }

  private function executeRevoke(PhutilArgumentParser $args) {
    $token = $this->loadTokenFromArguments($args);

    if ($token->getDateRevoked() !== null) {
      $this->logWarn(
        pht('NO-OP'),
        pht('Token %d was already revoked.', $token->getID()));
      return 0;
    }

    $this->newEngine()->revokeToken($token);

    $this->logOkay(
      pht('REVOKED'),
      pht('Revoked token %d.', $token->getID()));

    return 0;
  }

  private function executeList(PhutilArgumentParser $args) {
    $tokens = id(new PhabricatorScimTokenQuery())
      ->setViewer($this->getViewer())
      ->execute();

    $now = PhabricatorTime::getNow();

    $table = id(new PhutilConsoleTable())
      ->addColumn('id', array('title' => pht('ID')))
      ->addColumn('label', array('title' => pht('Label')))
      ->addColumn('bot', array('title' => pht('Bot')))
      ->addColumn('state', array('title' => pht('State')))
      ->addColumn('created', array('title' => pht('Created')))
      ->addColumn('used', array('title' => pht('Last Used')))
      ->addColumn('ends', array('title' => pht('Ends')))
      ->addColumn('note', array('title' => pht('Note')));

    foreach ($tokens as $token) {
      $bot = $token->getBot();
      $ends = $token->getDateRevoked();
      if ($ends === null) {
        $ends = $token->getDateExpires();
      }

      $table->addRow(
        array(
          'id' => $token->getID(),
          'label' => $token->getLabel(),
          'bot' => $bot ? $bot->getUsername() : '-',
          'state' => $token->getState($now),
          'created' => $this->formatEpoch($token->getDateCreated()),
          'used' => $this->formatEpoch($token->getDateLastUsed()),
          'ends' => $this->formatEpoch($ends),
          'note' => $token->isDueForRotation($now)
            ? pht('due for rotation')
            : '',
        ));
    }

    $table->draw();

    return 0;
  }

  private function loadTokenFromArguments(PhutilArgumentParser $args) {
    $id = $args->getArg('id');
    if ($id === null || !preg_match('/^[1-9]\d*\z/', $id)) {
      throw new PhutilArgumentUsageException(
        pht('Select a token with "--id <id>" (see "scim-token list").'));
    }

    $token = id(new PhabricatorScimTokenQuery())
      ->setViewer($this->getViewer())
      ->withIDs(array((int)$id))
      ->executeOne();
    if (!$token) {
      throw new PhutilArgumentUsageException(
        pht('No SCIM token with ID %d exists.', $id));
    }

    return $token;
  }

  private function formatEpoch($epoch) {
    if (!$epoch) {
      return '-';
    }
    return date('Y-m-d H:i:s', $epoch);
  }

  private function printToken($plaintext) {
    // NOTE: Nothing else is written to stdout, so automation can read the
    // token from its last line. It is never logged.
    echo tsprintf("%s\n", $plaintext);
  }

}
