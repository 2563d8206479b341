<?php

final class PhabricatorScimDriftQuery
  extends PhabricatorCursorPagedPolicyAwareQuery {

  private $ids;
  private $driftTypes;
  private $objectPHIDs;

  public function withIDs(array $ids) {
    $this->ids = $ids;
    return $this;
  }

  public function withDriftTypes(array $types) {
    $this->driftTypes = $types;
    return $this;
  }

  public function withObjectPHIDs(array $phids) {
    $this->objectPHIDs = $phids;
    return $this;
  }

  public function newResultObject() {
    return new PhabricatorScimDrift();
  }

  protected function loadPage() {
    return $this->loadStandardPage($this->newResultObject());
  }

  protected function buildWhereClauseParts(AphrontDatabaseConnection $conn) {
    $where = parent::buildWhereClauseParts($conn);

    if ($this->ids !== null) {
      $where[] = qsprintf($conn, 'id IN (%Ld)', $this->ids);
    }

    if ($this->driftTypes !== null) {
      $where[] = qsprintf($conn, 'driftType IN (%Ls)', $this->driftTypes);
    }

    if ($this->objectPHIDs !== null) {
      $where[] = qsprintf($conn, 'objectPHID IN (%Ls)', $this->objectPHIDs);
    }

    return $where;
  }

  public function getQueryApplicationClass() {
    return PhabricatorScimApplication::class;
  }

}
