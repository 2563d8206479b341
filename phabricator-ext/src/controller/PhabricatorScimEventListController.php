<?php

final class PhabricatorScimEventListController
  extends PhabricatorScimController {

  public function handleRequest(AphrontRequest $request) {
    $controller = id(new PhabricatorApplicationSearchController())
      ->setQueryKey($request->getURIData('queryKey'))
      ->setSearchEngine(new PhabricatorScimEventSearchEngine())
      ->setNavigation($this->buildSideNavView('log'));

    return $this->delegateToController($controller);
  }

  protected function buildApplicationCrumbs() {
    return parent::buildApplicationCrumbs()
      ->addTextCrumb(pht('Sync Log'), $this->getApplicationURI('log/'));
  }

}
