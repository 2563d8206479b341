<?php

final class PhabricatorScimDriftListController
  extends PhabricatorScimController {

  public function handleRequest(AphrontRequest $request) {
    $viewer = $this->getViewer();

    $pager = id(new AphrontCursorPagerView())
      ->readFromRequest($request);

    $findings = id(new PhabricatorScimDriftQuery())
      ->setViewer($viewer)
      ->executeWithCursorPager($pager);

    $links = id(new PhabricatorScimObjectLinks())
      ->setViewer($viewer)
      ->loadObjects(mpull($findings, 'getObjectPHID'));

    $list = id(new PHUIObjectItemListView())
      ->setViewer($viewer)
      ->setFlush(true)
      ->setNoDataString(
        pht(
          'No drift: every SCIM-managed user and project is as the '.
          'identity provider sent it.'));

    foreach ($findings as $finding) {
      $type = $finding->getDriftType();
      $object = $links->getObject($finding->getObjectPHID());
      $uri = PhabricatorScimObjectLinks::getObjectURI($object);

      $item = id(new PHUIObjectItemView())
        ->setObjectName($finding->getDriftTypeName())
        ->setHeader($finding->getSummary())
        ->setStatusIcon('fa-random orange', $finding->getDriftTypeName())
        ->addAttribute($links->renderLink($finding->getObjectPHID()))
        ->addIcon(
          'fa-clock-o',
          phabricator_datetime($finding->getDateCreated(), $viewer));

      if ($uri) {
        $item->setHref($uri);
      }

      $description = PhabricatorScimDrift::getDriftTypeDescription($type);
      if ($description !== null) {
        $item->addAttribute($description);
      }

      $list->addItem($item);
    }

    $info = id(new PHUIInfoView())
      ->setSeverity(PHUIInfoView::SEVERITY_NOTICE)
      ->appendChild(
        pht(
          'The SCIM service regularly compares what the identity provider '.
          'sent with the users and projects here. Changes made here to '.
          'SCIM-managed objects are overwritten on the next push from the '.
          'identity provider; make them in the identity provider instead.'));

    $box = id(new PHUIObjectBoxView())
      ->setHeaderText(pht('Findings'))
      ->setBackground(PHUIObjectBoxView::BLUE_PROPERTY)
      ->setObjectList($list);

    return $this->newScimPage(
      pht('Drift'),
      'drift',
      array($info, $box, $pager));
  }

}
