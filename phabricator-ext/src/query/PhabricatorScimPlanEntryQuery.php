<?php

final class PhabricatorScimPlanEntryQuery
  extends PhabricatorCursorPagedPolicyAwareQuery {

  private $ids;
  private $kinds;
  private $resourceTypes;
  private $objectPHIDs;
  private $opStates;
  private $needsAttention;

  public function withIDs(array $ids) {
    $this->ids = $ids;
    return $this;
  }

  public function withKinds(array $kinds) {
    $this->kinds = $kinds;
    return $this;
  }

  public function withResourceTypes(array $types) {
    $this->resourceTypes = $types;
    return $this;
  }

  public function withObjectPHIDs(array $phids) {
    $this->objectPHIDs = $phids;
    return $this;
  }

  /**
   * Entries whose operation is in one of these states
   * (PhabricatorScimStageOp::STATE_*). Conflicts have no operation and never
   * match.
   */
  public function withOpStates(array $states) {
    $this->opStates = $states;
    return $this;
  }

  /**
   * Entries to read before applying; the same as
   * PhabricatorScimPlanEntry::needsAttention(), in SQL.
   */
  public function withNeedsAttention($needs) {
    $this->needsAttention = $needs;
    return $this;
  }

  public function newResultObject() {
    return new PhabricatorScimPlanEntry();
  }

  protected function loadPage() {
    return $this->loadStandardPage($this->newResultObject());
  }

  protected function getPrimaryTableAlias() {
    return 'entry';
  }

  protected function willFilterPage(array $entries) {
    $op_ids = array_filter(mpull($entries, 'getStageOpID'));

    $ops = array();
    if ($op_ids) {
      $ops = id(new PhabricatorScimStageOpQuery())
        ->setViewer($this->getViewer())
        ->setParentQuery($this)
        ->withIDs(array_values(array_unique($op_ids)))
        ->execute();
      $ops = mpull($ops, null, 'getID');
    }

    foreach ($entries as $entry) {
      $entry->attachStageOp(idx($ops, $entry->getStageOpID()));
    }

    return $entries;
  }

  protected function buildJoinClauseParts(AphrontDatabaseConnection $conn) {
    $joins = parent::buildJoinClauseParts($conn);

    if ($this->opStates !== null) {
      $joins[] = qsprintf(
        $conn,
        'JOIN %R op ON op.id = entry.stageOpID',
        new PhabricatorScimStageOp());
    }

    return $joins;
  }

  protected function buildWhereClauseParts(AphrontDatabaseConnection $conn) {
    $where = parent::buildWhereClauseParts($conn);

    if ($this->ids !== null) {
      $where[] = qsprintf($conn, 'entry.id IN (%Ld)', $this->ids);
    }

    if ($this->kinds !== null) {
      $where[] = qsprintf($conn, 'entry.kind IN (%Ls)', $this->kinds);
    }

    if ($this->resourceTypes !== null) {
      $where[] = qsprintf(
        $conn,
        'entry.resourceType IN (%Ls)',
        $this->resourceTypes);
    }

    if ($this->objectPHIDs !== null) {
      $where[] = qsprintf(
        $conn,
        'entry.objectPHID IN (%Ls)',
        $this->objectPHIDs);
    }

    if ($this->opStates !== null) {
      $where[] = qsprintf($conn, 'op.state IN (%Ls)', $this->opStates);
    }

    if ($this->needsAttention !== null) {
      $attention = self::buildNeedsAttentionCondition($conn, 'entry');
      if ($this->needsAttention) {
        $where[] = $attention;
      } else {
        $where[] = qsprintf($conn, 'NOT (%Q)', $attention);
      }
    }

    return $where;
  }

  /**
   * PhabricatorScimPlanEntry::needsAttention() as a condition on the table
   * aliased $alias. "details" is matched as text: the service writes these
   * keys only where they apply.
   */
  public static function buildNeedsAttentionCondition(
    AphrontDatabaseConnection $conn,
    $alias) {

    $kinds = array_merge(
      array(PhabricatorScimPlanEntry::KIND_CONFLICT),
      PhabricatorScimPlanEntry::getDeactivationKinds());

    return qsprintf(
      $conn,
      '%T.kind IN (%Ls) OR %T.details LIKE %~ OR %T.details LIKE %~',
      $alias,
      $kinds,
      $alias,
      '"usernameTaken"',
      $alias,
      '"revoked"');
  }

  public function getQueryApplicationClass() {
    return PhabricatorScimApplication::class;
  }

}
