<?php

final class PhabricatorScimInstanceQuery
  extends PhabricatorCursorPagedPolicyAwareQuery {

  private $ids;
  private $modifiedMin;

  public function withIDs(array $ids) {
    $this->ids = $ids;
    return $this;
  }

  public function withDateModifiedAfter($epoch) {
    $this->modifiedMin = $epoch;
    return $this;
  }

  public function newResultObject() {
    return new PhabricatorScimInstance();
  }

  protected function loadPage() {
    return $this->loadStandardPage($this->newResultObject());
  }

  protected function buildWhereClauseParts(AphrontDatabaseConnection $conn) {
    $where = parent::buildWhereClauseParts($conn);

    if ($this->ids !== null) {
      $where[] = qsprintf($conn, 'id IN (%Ld)', $this->ids);
    }

    if ($this->modifiedMin !== null) {
      $where[] = qsprintf($conn, 'dateModified >= %d', $this->modifiedMin);
    }

    return $where;
  }

  public function getQueryApplicationClass() {
    return PhabricatorScimApplication::class;
  }

}
