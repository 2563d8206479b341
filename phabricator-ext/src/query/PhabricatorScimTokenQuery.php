<?php

final class PhabricatorScimTokenQuery
  extends PhabricatorCursorPagedPolicyAwareQuery {

  private $ids;
  private $botPHIDs;
  private $isRevoked;

  public function withIDs(array $ids) {
    $this->ids = $ids;
    return $this;
  }

  public function withBotPHIDs(array $phids) {
    $this->botPHIDs = $phids;
    return $this;
  }

  public function withIsRevoked($revoked) {
    $this->isRevoked = $revoked;
    return $this;
  }

  public function newResultObject() {
    return new PhabricatorScimToken();
  }

  protected function loadPage() {
    return $this->loadStandardPage($this->newResultObject());
  }

  protected function willFilterPage(array $tokens) {
    $bot_phids = mpull($tokens, 'getBotPHID');

    $bots = id(new PhabricatorPeopleQuery())
      ->setViewer($this->getViewer())
      ->setParentQuery($this)
      ->withPHIDs($bot_phids)
      ->execute();
    $bots = mpull($bots, null, 'getPHID');

    // NOTE: A token whose bot was destroyed stays listed (with no bot), so
    // administrators can see and revoke it.
    foreach ($tokens as $token) {
      $token->attachBot(idx($bots, $token->getBotPHID()));
    }

    return $tokens;
  }

  protected function buildWhereClauseParts(AphrontDatabaseConnection $conn) {
    $where = parent::buildWhereClauseParts($conn);

    if ($this->ids !== null) {
      $where[] = qsprintf($conn, 'id IN (%Ld)', $this->ids);
    }

    if ($this->botPHIDs !== null) {
      $where[] = qsprintf($conn, 'botPHID IN (%Ls)', $this->botPHIDs);
    }

    if ($this->isRevoked !== null) {
      if ($this->isRevoked) {
        $where[] = qsprintf($conn, 'dateRevoked IS NOT NULL');
      } else {
        $where[] = qsprintf($conn, 'dateRevoked IS NULL');
      }
    }

    return $where;
  }

  public function getQueryApplicationClass() {
    return PhabricatorScimApplication::class;
  }

}
