<?php

final class PhabricatorScimStageOpQuery
  extends PhabricatorCursorPagedPolicyAwareQuery {

  private $ids;
  private $states;

  public function withIDs(array $ids) {
    $this->ids = $ids;
    return $this;
  }

  public function withStates(array $states) {
    $this->states = $states;
    return $this;
  }

  public function newResultObject() {
    return new PhabricatorScimStageOp();
  }

  protected function loadPage() {
    return $this->loadStandardPage($this->newResultObject());
  }

  protected function buildWhereClauseParts(AphrontDatabaseConnection $conn) {
    $where = parent::buildWhereClauseParts($conn);

    if ($this->ids !== null) {
      $where[] = qsprintf($conn, 'id IN (%Ld)', $this->ids);
    }

    if ($this->states !== null) {
      $where[] = qsprintf($conn, 'state IN (%Ls)', $this->states);
    }

    return $where;
  }

  public function getQueryApplicationClass() {
    return PhabricatorScimApplication::class;
  }

}
