<?php

final class PhabricatorScimEventSearchEngine
  extends PhabricatorApplicationSearchEngine {

  public function getResultTypeDescription() {
    return pht('SCIM Sync Events');
  }

  public function getApplicationClassName() {
    return PhabricatorScimApplication::class;
  }

  public function canUseInPanelContext() {
    return false;
  }

  public function newQuery() {
    return new PhabricatorScimEventQuery();
  }

  protected function buildQueryFromParameters(array $map) {
    $query = $this->newQuery();

    if ($map['outcomes']) {
      $query->withOutcomes($map['outcomes']);
    }

    if ($map['resourceTypes']) {
      $query->withResourceTypes($map['resourceTypes']);
    }

    if ($map['objectPHIDs']) {
      $query->withObjectPHIDs($map['objectPHIDs']);
    }

    if ($map['createdStart'] || $map['createdEnd']) {
      $query->withDateCreatedBetween(
        $map['createdStart'],
        $map['createdEnd']);
    }

    return $query;
  }

  protected function buildCustomSearchFields() {
    return array(
      id(new PhabricatorSearchCheckboxesField())
        ->setKey('outcomes')
        ->setLabel(pht('Outcome'))
        ->setOptions(PhabricatorScimEvent::getOutcomeMap())
        ->setDescription(pht('Find events with given outcomes.')),
      id(new PhabricatorSearchCheckboxesField())
        ->setKey('resourceTypes')
        ->setLabel(pht('Resource'))
        ->setOptions(PhabricatorScimEvent::getResourceTypeMap())
        ->setDescription(pht('Find events about users or groups.')),
      id(new PhabricatorPHIDsSearchField())
        ->setKey('objectPHIDs')
        ->setLabel(pht('Objects'))
        ->setDescription(pht('Find events about particular objects.')),
      id(new PhabricatorSearchDateField())
        ->setKey('createdStart')
        ->setLabel(pht('After')),
      id(new PhabricatorSearchDateField())
        ->setKey('createdEnd')
        ->setLabel(pht('Before')),
    );
  }

  protected function getURI($path) {
    return '/scim/log/'.$path;
  }

  protected function getBuiltinQueryNames() {
    return array(
      'all' => pht('All Events'),
      'problems' => pht('Warnings and Errors'),
      'day' => pht('Last Day'),
    );
  }

  public function buildSavedQueryFromBuiltin($query_key) {
    $query = $this->newSavedQuery();
    $query->setQueryKey($query_key);

    switch ($query_key) {
      case 'all':
        return $query;
      case 'problems':
        return $query->setParameter(
          'outcomes',
          array(
            PhabricatorScimEvent::OUTCOME_WARNING,
            PhabricatorScimEvent::OUTCOME_ERROR,
          ));
      case 'day':
        return $query->setParameter('createdStart', '-1 day');
    }

    return parent::buildSavedQueryFromBuiltin($query_key);
  }

  protected function getRequiredHandlePHIDsForResultList(
    array $events,
    PhabricatorSavedQuery $query) {

    $phids = array();
    foreach ($events as $event) {
      if ($event->getObjectPHID()) {
        $phids[] = $event->getObjectPHID();
      }
      $details = $event->getDecodedDetails();
      if (is_array($details)) {
        $phids = array_merge(
          $phids,
          PhabricatorScimDetailsView::findPHIDs($details));
      }
    }

    return array_values(array_unique($phids));
  }

  protected function renderResultList(
    array $events,
    PhabricatorSavedQuery $query,
    array $handles) {
    assert_instances_of($events, PhabricatorScimEvent::class);

    $viewer = $this->requireViewer();

    $links = id(new PhabricatorScimObjectLinks())
      ->setViewer($viewer)
      ->loadObjects(mpull($events, 'getObjectPHID'));

    $token_ids = array_filter(mpull($events, 'getTokenID'));
    $tokens = array();
    if ($token_ids) {
      $tokens = id(new PhabricatorScimTokenQuery())
        ->setViewer($viewer)
        ->withIDs(array_values(array_unique($token_ids)))
        ->execute();
      $tokens = mpull($tokens, null, 'getID');
    }

    $list = id(new PHUIObjectItemListView())
      ->setViewer($viewer)
      ->setFlush(true);

    foreach ($events as $event) {
      $summary = $event->getSummary();
      if (!strlen($summary)) {
        $summary = $event->getMethod().' '.$event->getPath();
      }

      $item = id(new PHUIObjectItemView())
        ->setObjectName(pht('Event %d', $event->getID()))
        ->setHeader($summary)
        ->setStatusIcon(
          $event->getOutcomeIcon().' '.$event->getOutcomeColor(),
          $event->getOutcomeName())
        ->addIcon(
          'none',
          phabricator_datetime($event->getDateCreated(), $viewer));

      if ($event->getOutcome() !== PhabricatorScimEvent::OUTCOME_OK) {
        $item
          ->setBarColor($event->getOutcomeColor())
          ->setEffect('highlighted');
        $item->addAttribute(
          id(new PHUITagView())
            ->setType(PHUITagView::TYPE_SHADE)
            ->setColor($event->getOutcomeColor())
            ->setIcon($event->getOutcomeIcon())
            ->setName($event->getOutcomeName()));
      }

      $item->addAttribute(
        phutil_tag(
          'tt',
          array(),
          $event->getMethod().' '.$event->getPath().' '.$event->getStatus()));

      $object_link = $links->renderLink($event->getObjectPHID());
      if ($object_link !== null) {
        $item->addAttribute($object_link);
      }

      if ($event->getResourceType() !== null) {
        $item->addByline($event->getResourceType());
      }

      $item->addByline(pht('Request %s', $event->getRequestID()));
      $item->addByline($this->renderToken($event, $tokens));

      $rows = id(new PhabricatorScimDetailsView())
        ->setHandles($handles)
        ->renderDetails($event->getDecodedDetails());
      if ($rows) {
        $item->appendChild($rows);
      }

      $list->addItem($item);
    }

    return id(new PhabricatorApplicationSearchResultView())
      ->setObjectList($list)
      ->setNoDataString(pht('No SCIM events found.'));
  }

  /**
   * The token that made the call: its id and label, linked to the Tokens
   * page. A request refused before any token was verified has none.
   */
  private function renderToken(PhabricatorScimEvent $event, array $tokens) {
    $id = $event->getTokenID();
    if (!$id) {
      return pht('No token');
    }
    $token = idx($tokens, $id);
    if (!$token) {
      return pht('Token %d', $id);
    }
    return phutil_tag(
      'a',
      array(
        'href' => '/scim/tokens/',
      ),
      pht('Token %d: %s', $id, $token->getLabel()));
  }

}
