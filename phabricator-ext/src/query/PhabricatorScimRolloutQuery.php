<?php

final class PhabricatorScimRolloutQuery
  extends PhabricatorCursorPagedPolicyAwareQuery {

  private $ids;

  public function withIDs(array $ids) {
    $this->ids = $ids;
    return $this;
  }

  /**
   * The rollout, or null when the service never staged one. The table holds
   * one row; should there ever be more, the newest counts.
   */
  public static function loadCurrent(PhabricatorUser $viewer) {
    $rollouts = id(new self())
      ->setViewer($viewer)
      ->setLimit(1)
      ->execute();
    return head($rollouts) ? head($rollouts) : null;
  }

  public function newResultObject() {
    return new PhabricatorScimRollout();
  }

  protected function loadPage() {
    return $this->loadStandardPage($this->newResultObject());
  }

  protected function buildWhereClauseParts(AphrontDatabaseConnection $conn) {
    $where = parent::buildWhereClauseParts($conn);

    if ($this->ids !== null) {
      $where[] = qsprintf($conn, 'id IN (%Ld)', $this->ids);
    }

    return $where;
  }

  public function getQueryApplicationClass() {
    return PhabricatorScimApplication::class;
  }

}
