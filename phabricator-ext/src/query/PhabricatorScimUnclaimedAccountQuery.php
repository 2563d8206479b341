<?php

/**
 * Accounts provisioning will not manage: enabled, not mailing lists, named
 * by no plan entry about a user (other than a conflict), not in `scim_user`,
 * and not the bot of a SCIM token. They stay as they are when the plan is
 * applied, and later nothing disables them when people leave.
 */
final class PhabricatorScimUnclaimedAccountQuery
  extends PhabricatorCursorPagedPolicyAwareQuery {

  public function newResultObject() {
    return new PhabricatorUser();
  }

  protected function loadPage() {
    return $this->loadStandardPage($this->newResultObject());
  }

  protected function getPrimaryTableAlias() {
    return 'account';
  }

  protected function buildWhereClauseParts(AphrontDatabaseConnection $conn) {
    $where = parent::buildWhereClauseParts($conn);

    $where[] = qsprintf($conn, 'account.isDisabled = 0');
    $where[] = qsprintf($conn, 'account.isMailingList = 0');

    $where[] = qsprintf(
      $conn,
      'NOT EXISTS (SELECT 1 FROM %R entry
        WHERE entry.objectPHID = account.phid
          AND entry.resourceType = %s AND entry.kind != %s)',
      new PhabricatorScimPlanEntry(),
      PhabricatorScimPlanEntry::RESOURCE_USER,
      PhabricatorScimPlanEntry::KIND_CONFLICT);

    $where[] = qsprintf(
      $conn,
      'NOT EXISTS (SELECT 1 FROM %R managed
        WHERE managed.userPHID = account.phid)',
      new PhabricatorScimUser());

    $where[] = qsprintf(
      $conn,
      'NOT EXISTS (SELECT 1 FROM %R token
        WHERE token.botPHID = account.phid)',
      new PhabricatorScimToken());

    return $where;
  }

  /**
   * How many accounts the query finds, without loading them.
   */
  public function countUnclaimed() {
    $table = $this->newResultObject();
    $conn = $table->establishConnection('r');
    $row = queryfx_one(
      $conn,
      'SELECT COUNT(*) N FROM %R account %Q',
      $table,
      $this->buildWhereClause($conn));
    return (int)$row['N'];
  }

  public function getQueryApplicationClass() {
    return PhabricatorPeopleApplication::class;
  }

}
