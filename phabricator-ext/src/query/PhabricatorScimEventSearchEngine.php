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
        $phids = array_merge($phids, self::findPHIDs($details));
      }
    }

    return array_values(array_unique($phids));
  }

  /**
   * Every PHID named anywhere in a decoded "details" value (member ids, a
   * login provider), so that it renders as a handle instead of bare text.
   */
  private static function findPHIDs($value) {
    if (is_string($value)) {
      if (preg_match('/^PHID-[A-Z]{4}-[a-z0-9]+\z/', $value)) {
        return array($value);
      }
      return array();
    }
    if (!is_array($value)) {
      return array();
    }
    $phids = array();
    foreach ($value as $item) {
      $phids = array_merge($phids, self::findPHIDs($item));
    }
    return $phids;
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

      $rows = $this->renderDetails($event, $handles);
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

  private function renderDetails(PhabricatorScimEvent $event, array $handles) {
    $details = $event->getDecodedDetails();
    if (!$details || !is_array($details)) {
      return null;
    }

    // NOTE: The service never writes secrets into "details"; it is a
    // structured diff and notes such as what a 200 response hid.
    $lines = array();
    foreach ($details as $key => $value) {
      $lines[] = phutil_tag(
        'div',
        array(),
        array(
          phutil_tag('strong', array(), self::getDetailLabel($key)),
          ': ',
          $this->renderDetailValue($key, $value, $handles),
        ));
    }

    return phutil_tag(
      'div',
      array(
        'class' => 'phui-object-item-details',
        'style' => 'padding: 4px 8px 8px 8px; color: #6B748C;',
      ),
      $lines);
  }

  private static function getDetailLabel($key) {
    $labels = array(
      'realName' => pht('Real name'),
      'active' => pht('Active'),
      'bot' => pht('Bot'),
      'email' => pht('Primary email'),
      'emailsAdded' => pht('Emails added'),
      'emailsRemoved' => pht('Emails removed'),
      'username' => pht('Username'),
      'userName' => pht('SCIM userName'),
      'externalId' => pht('SCIM externalId'),
      'displayName' => pht('SCIM displayName'),
      'login' => pht('Login link'),
      'revoked' => pht('Revoked'),
      'slug' => pht('Hashtag'),
      'members' => pht('Members'),
      'name' => pht('Name'),
      'status' => pht('Status'),
    );
    return idx($labels, $key, $key);
  }

  /**
   * One "details" entry as readable text: "old -> new" for a change, a
   * handle for a PHID, counts and handles for a membership change.
   */
  private function renderDetailValue($key, $value, array $handles) {
    if (is_array($value)
      && (array_key_exists('old', $value) || array_key_exists('new', $value))
      && count($value) <= 2) {
      return array(
        $this->renderScalar($key, idx($value, 'old'), $handles),
        " \xE2\x86\x92 ",
        $this->renderScalar($key, idx($value, 'new'), $handles),
      );
    }

    if ($key === 'members' && is_array($value)) {
      $parts = array();
      foreach (array('added' => 'addedIds', 'removed' => 'removedIds')
        as $count_key => $ids_key) {
        $count = (int)idx($value, $count_key, 0);
        if (!$count) {
          continue;
        }
        $ids = idx($value, $ids_key, array());
        $names = $this->renderList($ids, $handles);
        if ($count_key === 'added') {
          $text = pht('%d added', $count);
        } else {
          $text = pht('%d removed', $count);
        }
        $more = $count - count($ids);
        $parts[] = array(
          $text,
          $names ? array(' (', $names, ')') : null,
          $more > 0 ? pht(' and %d more', $more) : null,
        );
      }
      return phutil_implode_html('; ', $parts);
    }

    if ($key === 'revoked' && is_array($value)) {
      return pht(
        '%d session(s) ended, %d API token(s) and %d one-time link(s) expired',
        (int)idx($value, 'sessions', 0),
        (int)idx($value, 'api_tokens', 0),
        (int)idx($value, 'temporary_tokens', 0));
    }

    if ($key === 'login' && is_array($value)) {
      return pht(
        '%s as "%s" (%s)',
        $this->renderScalar($key, idx($value, 'provider'), $handles),
        (string)idx($value, 'identifier', ''),
        (string)idx($value, 'outcome', ''));
    }

    if (is_array($value) && $value === array_values($value)) {
      return $this->renderList($value, $handles);
    }

    return $this->renderScalar($key, $value, $handles);
  }

  private function renderList(array $values, array $handles) {
    $out = array();
    foreach ($values as $value) {
      $out[] = $this->renderScalar(null, $value, $handles);
    }
    return phutil_implode_html(', ', $out);
  }

  private function renderScalar($key, $value, array $handles) {
    if ($value === null) {
      return phutil_tag('em', array(), pht('none'));
    }
    if (is_bool($value)) {
      return $value ? pht('yes') : pht('no');
    }
    if (is_string($value) && isset($handles[$value])) {
      return $handles[$value]->renderLink();
    }
    if ($key === 'status') {
      // Project status: PhabricatorProjectStatus::STATUS_ACTIVE is 0,
      // STATUS_ARCHIVED 100.
      if ((string)$value === '0') {
        return pht('Active');
      }
      if ((string)$value === '100') {
        return pht('Archived');
      }
    }
    if (is_array($value)) {
      return phutil_tag('tt', array(), phutil_json_encode($value));
    }
    return (string)$value;
  }

}
