<?php

final class PhabricatorScimEventQuery
  extends PhabricatorCursorPagedPolicyAwareQuery {

  private $ids;
  private $outcomes;
  private $resourceTypes;
  private $objectPHIDs;
  private $createdMin;
  private $createdMax;

  public function withIDs(array $ids) {
    $this->ids = $ids;
    return $this;
  }

  public function withOutcomes(array $outcomes) {
    $this->outcomes = $outcomes;
    return $this;
  }

  /**
   * @param list<string> Resource types ("User", "Group"), or
   *   `PhabricatorScimEvent::RESOURCE_NONE` for requests with none.
   */
  public function withResourceTypes(array $types) {
    $this->resourceTypes = $types;
    return $this;
  }

  public function withObjectPHIDs(array $phids) {
    $this->objectPHIDs = $phids;
    return $this;
  }

  public function withDateCreatedBetween($min, $max) {
    $this->createdMin = $min;
    $this->createdMax = $max;
    return $this;
  }

  public function newResultObject() {
    return new PhabricatorScimEvent();
  }

  protected function loadPage() {
    return $this->loadStandardPage($this->newResultObject());
  }

  protected function buildWhereClauseParts(AphrontDatabaseConnection $conn) {
    $where = parent::buildWhereClauseParts($conn);

    if ($this->ids !== null) {
      $where[] = qsprintf($conn, 'id IN (%Ld)', $this->ids);
    }

    if ($this->outcomes !== null) {
      $where[] = qsprintf($conn, 'outcome IN (%Ls)', $this->outcomes);
    }

    if ($this->resourceTypes !== null) {
      $types = array_fuse($this->resourceTypes);
      $none = isset($types[PhabricatorScimEvent::RESOURCE_NONE]);
      unset($types[PhabricatorScimEvent::RESOURCE_NONE]);

      $parts = array();
      if ($types) {
        $parts[] = qsprintf($conn, 'resourceType IN (%Ls)', array_keys($types));
      }
      if ($none) {
        $parts[] = qsprintf($conn, 'resourceType IS NULL');
      }

      if ($parts) {
        $where[] = qsprintf($conn, '%LO', $parts);
      } else {
        throw new PhabricatorEmptyQueryException();
      }
    }

    if ($this->objectPHIDs !== null) {
      $where[] = qsprintf($conn, 'objectPHID IN (%Ls)', $this->objectPHIDs);
    }

    if ($this->createdMin !== null) {
      $where[] = qsprintf($conn, 'dateCreated >= %d', $this->createdMin);
    }

    if ($this->createdMax !== null) {
      $where[] = qsprintf($conn, 'dateCreated <= %d', $this->createdMax);
    }

    return $where;
  }

  public function getQueryApplicationClass() {
    return PhabricatorScimApplication::class;
  }

}
