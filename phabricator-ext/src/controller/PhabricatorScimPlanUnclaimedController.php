<?php

/**
 * Accounts provisioning will not manage (see
 * @{class:PhabricatorScimUnclaimedAccountQuery}): the people to look at
 * before applying a staged rollout, since nothing disables these accounts
 * when the person leaves.
 */
final class PhabricatorScimPlanUnclaimedController
  extends PhabricatorScimController {

  public function handleRequest(AphrontRequest $request) {
    $viewer = $this->getViewer();

    $pager = id(new AphrontCursorPagerView())
      ->readFromRequest($request);

    $query = id(new PhabricatorScimUnclaimedAccountQuery())
      ->setViewer($viewer);
    $total = id(clone $query)->countUnclaimed();
    $accounts = $query->executeWithCursorPager($pager);

    $list = id(new PHUIObjectItemListView())
      ->setViewer($viewer)
      ->setFlush(true)
      ->setNoDataString(
        pht(
          'No unclaimed accounts: the plan or SCIM covers every enabled '.
          'account.'));

    foreach ($accounts as $account) {
      $uri = '/p/'.$account->getUsername().'/';

      $item = id(new PHUIObjectItemView())
        ->setObjectName('@'.$account->getUsername())
        ->setHeader($account->getRealName())
        ->setHref($uri)
        ->setStatusIcon('fa-user-times orange', pht('Unclaimed'))
        ->addIcon(
          'none',
          pht(
            'Created %s',
            phabricator_date($account->getDateCreated(), $viewer)));

      if ($account->getIsAdmin()) {
        $item->addAttribute(pht('Administrator'));
      }
      if ($account->getIsSystemAgent()) {
        $item->addAttribute(pht('Bot'));
      }
      if (!$account->getIsApproved()) {
        $item->addAttribute(pht('Not approved'));
      }

      $list->addItem($item);
    }

    $info = id(new PHUIInfoView())
      ->setSeverity(PHUIInfoView::SEVERITY_NOTICE)
      ->appendChild(
        pht(
          'Enabled accounts (not mailing lists) that no plan entry names '.
          'and that SCIM does not already manage; the bots of SCIM tokens '.
          'are left out. Applying the plan leaves them as they are, and the '.
          'identity provider can not disable them when the person leaves. '.
          'Assign the people to the application in the identity provider '.
          'if they should be provisioned, or disable accounts that are no '.
          'longer used.'));

    $box = id(new PHUIObjectBoxView())
      ->setHeaderText(
        pht('Unclaimed Accounts (%s)', new PhutilNumber($total)))
      ->setBackground(PHUIObjectBoxView::BLUE_PROPERTY)
      ->setObjectList($list);

    return $this->newScimPage(
      pht('Unclaimed Accounts'),
      'plan/unclaimed',
      array($info, $box, $pager));
  }

}
