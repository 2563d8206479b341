<?php

/**
 * The plan of a staged rollout: the rollout's phase, what the identity
 * provider's writes would do by kind (conflicts and other entries to read
 * first prominent), and the entries themselves, filterable by kind and by
 * the state of their operation.
 */
final class PhabricatorScimPlanController extends PhabricatorScimController {

  public function handleRequest(AphrontRequest $request) {
    $viewer = $this->getViewer();

    $kind_map = PhabricatorScimPlanEntry::getKindMap();
    $state_map = PhabricatorScimStageOp::getStateMap();

    $kind = $request->getStr('kind');
    if ($kind !== PhabricatorScimPlanEntry::FILTER_ATTENTION &&
        !isset($kind_map[$kind])) {
      $kind = null;
    }
    $state = $request->getStr('state');
    if (!isset($state_map[$state])) {
      $state = null;
    }

    $rollout = PhabricatorScimRolloutQuery::loadCurrent($viewer);
    $op_counts = $this->loadStageOpCounts();
    $kind_counts = $this->loadKindCounts();
    $attention = $this->loadAttentionCounts();

    $content = array();
    $content[] = $this->buildRolloutBox($rollout, $op_counts);
    $notice = $this->buildAttentionNotice($rollout, $attention);
    if ($notice) {
      $content[] = $notice;
    }
    $content[] = $this->buildKindBox($kind_counts);

    $pager = id(new AphrontCursorPagerView())
      ->readFromRequest($request);

    // In the order "phab-scim apply" replays them.
    $query = id(new PhabricatorScimPlanEntryQuery())
      ->setViewer($viewer)
      ->setOrder('oldest');
    if ($kind === PhabricatorScimPlanEntry::FILTER_ATTENTION) {
      $query->withNeedsAttention(true);
    } else if ($kind !== null) {
      $query->withKinds(array($kind));
    }
    if ($state !== null) {
      $query->withOpStates(array($state));
    }
    $entries = $query->executeWithCursorPager($pager);

    $content[] = $this->buildEntryBox($entries, $kind, $state);
    $content[] = $pager;

    return $this->newScimPage(pht('Plan'), 'plan', $content);
  }

  /**
   * Entries by kind and by the state of their operation:
   * kind => (state => count); conflicts (no operation) under state "".
   */
  private function loadKindCounts() {
    $entry_table = new PhabricatorScimPlanEntry();
    $rows = queryfx_all(
      $entry_table->establishConnection('r'),
      'SELECT entry.kind, op.state, COUNT(*) N
        FROM %R entry LEFT JOIN %R op ON op.id = entry.stageOpID
        GROUP BY entry.kind, op.state',
      $entry_table,
      new PhabricatorScimStageOp());

    $counts = array();
    foreach ($rows as $row) {
      $counts[$row['kind']][(string)$row['state']] = (int)$row['N'];
    }
    return $counts;
  }

  private function loadAttentionCounts() {
    $table = new PhabricatorScimPlanEntry();
    $conn = $table->establishConnection('r');

    $row = queryfx_one(
      $conn,
      'SELECT
          COUNT(*) total,
          SUM(IF(entry.kind = %s, 1, 0)) conflicts,
          SUM(IF(entry.kind IN (%Ls), 1, 0)) deactivations,
          SUM(IF(entry.details LIKE %~, 1, 0)) usernames
        FROM %R entry WHERE %Q',
      PhabricatorScimPlanEntry::KIND_CONFLICT,
      PhabricatorScimPlanEntry::getDeactivationKinds(),
      '"usernameTaken"',
      $table,
      PhabricatorScimPlanEntryQuery::buildNeedsAttentionCondition(
        $conn,
        'entry'));

    // What deactivations revoke, summed over the entries that say.
    $revoked = array(
      'sessions' => 0,
      'api_tokens' => 0,
      'temporary_tokens' => 0,
    );
    $revoking = 0;
    $entries = $table->loadAllWhere('details LIKE %~', '"revoked"');
    foreach ($entries as $entry) {
      $counts = $entry->getRevokedCounts();
      if (!$counts) {
        continue;
      }
      $revoking++;
      foreach ($counts as $key => $count) {
        $revoked[$key] += $count;
      }
    }

    return array(
      'total' => (int)$row['total'],
      'conflicts' => (int)$row['conflicts'],
      'deactivations' => (int)$row['deactivations'],
      'usernames' => (int)$row['usernames'],
      'revoking' => $revoking,
      'revoked' => $revoked,
    );
  }

  private function buildRolloutBox($rollout, array $op_counts) {
    $viewer = $this->getViewer();

    $properties = id(new PHUIPropertyListView())
      ->setViewer($viewer);

    if (!$rollout) {
      $properties->addProperty(
        pht('Phase'),
        phutil_tag(
          'em',
          array(),
          pht(
            'No staged rollout: the service writes the identity '.
            'provider\'s changes to Phabricator directly, and there is no '.
            'plan.')));
    } else {
      $failed = $op_counts[PhabricatorScimStageOp::STATE_FAILED];
      $properties->addProperty(
        pht('Phase'),
        array(
          $rollout->renderPhaseTag(),
          ' ',
          $this->renderRolloutPhaseDescription($rollout, $failed),
        ));

      $dates = array(
        pht('Staged Since') => $rollout->getDateStaged(),
        pht('Apply Started') => $rollout->getDateApplyStarted(),
        pht('Applied') => $rollout->getDateApplied(),
      );
      foreach ($dates as $label => $epoch) {
        if (!$epoch) {
          continue;
        }
        $properties->addProperty(
          $label,
          array(
            phabricator_datetime($epoch, $viewer),
            ' (',
            $this->renderAge($epoch),
            ')',
          ));
      }

      $parts = array();
      foreach (PhabricatorScimStageOp::getStateMap() as $state => $name) {
        $count = $op_counts[$state];
        $text = pht(
          '%s %s',
          new PhutilNumber($count),
          phutil_utf8_strtolower($name));
        if ($count) {
          $text = phutil_tag(
            'a',
            array('href' => $this->getPlanURI(null, $state)),
            $text);
        }
        $parts[] = $text;
      }
      $properties->addProperty(
        pht('Operations'),
        phutil_implode_html(', ', $parts));

      if ($rollout->isApplyRequested()) {
        $properties->addProperty(
          pht('Apply Requested'),
          pht(
            '%s by %s; the service starts within 15 seconds.',
            phabricator_datetime($rollout->getDateApplyRequested(), $viewer),
            $viewer->renderHandle($rollout->getApplyRequestedBy())));
      }
    }

    $unclaimed = id(new PhabricatorScimUnclaimedAccountQuery())
      ->setViewer($viewer)
      ->countUnclaimed();
    $properties->addProperty(
      pht('Unclaimed Accounts'),
      array(
        phutil_tag(
          'a',
          array('href' => $this->getApplicationURI('plan/unclaimed/')),
          pht('%s account(s)', new PhutilNumber($unclaimed))),
        ' ',
        pht('that provisioning will not manage.'),
      ));

    $header = id(new PHUIHeaderView())
      ->setHeader(pht('Staged Rollout'));
    $can_apply = $rollout &&
      $rollout->getPhase() !== PhabricatorScimRollout::PHASE_APPLIED &&
      !$rollout->isApplyRequested();
    if ($can_apply) {
      $header->addActionLink(
        id(new PHUIButtonView())
          ->setTag('a')
          ->setText(pht('Apply Plan...'))
          ->setIcon('fa-play')
          ->setHref($this->getApplicationURI('plan/apply/'))
          ->setWorkflow(true));
    }

    return id(new PHUIObjectBoxView())
      ->setHeader($header)
      ->setBackground(PHUIObjectBoxView::BLUE_PROPERTY)
      ->appendChild($properties);
  }

  private function buildAttentionNotice($rollout, array $attention) {
    $items = array();

    if ($attention['conflicts']) {
      $items[] = phutil_tag(
        'a',
        array(
          'href' => $this->getPlanURI(
            PhabricatorScimPlanEntry::KIND_CONFLICT,
            null),
        ),
        pht(
          '%s request(s) refused (conflicts): the identity provider was '.
          'answered with an error, and they are not in the plan.',
          new PhutilNumber($attention['conflicts'])));
    }

    if ($attention['usernames']) {
      $items[] = pht(
        '%s new account(s) get another username than the one derived from '.
        'the identity provider, which is taken (a suffix is added).',
        new PhutilNumber($attention['usernames']));
    }

    if ($attention['deactivations']) {
      $items[] = pht(
        '%s account(s) are deactivated or deleted.',
        new PhutilNumber($attention['deactivations']));
    }

    if ($attention['revoking']) {
      $revoked = $attention['revoked'];
      $items[] = pht(
        'For %s account(s), %s session(s) end, %s API token(s) and %s '.
        'one-time link(s) are revoked.',
        new PhutilNumber($attention['revoking']),
        new PhutilNumber($revoked['sessions']),
        new PhutilNumber($revoked['api_tokens']),
        new PhutilNumber($revoked['temporary_tokens']));
    }

    if (!$items) {
      return null;
    }

    $staged = ($rollout &&
      $rollout->getPhase() === PhabricatorScimRollout::PHASE_STAGED);

    $items[] = phutil_tag(
      'a',
      array(
        'href' => $this->getPlanURI(
          PhabricatorScimPlanEntry::FILTER_ATTENTION,
          null),
      ),
      pht(
        'Show the %s entries that need attention.',
        new PhutilNumber($attention['total'])));

    return id(new PHUIInfoView())
      ->setSeverity(
        $attention['conflicts']
          ? PHUIInfoView::SEVERITY_ERROR
          : PHUIInfoView::SEVERITY_WARNING)
      ->setTitle(
        $staged
          ? pht('Read before applying')
          : pht('Needs attention'))
      ->setErrors($items);
  }

  private function buildKindBox(array $kind_counts) {
    $rows = array();
    $classes = array();
    $totals = array();
    $states = array_keys(PhabricatorScimStageOp::getStateMap());

    // Known kinds in their order, then any the service wrote that this
    // page does not know yet.
    $kinds = array_keys(PhabricatorScimPlanEntry::getKindMap());
    $kinds = array_merge($kinds, array_diff(array_keys($kind_counts), $kinds));

    foreach ($kinds as $kind) {
      $by_state = idx($kind_counts, $kind);
      if (!$by_state) {
        continue;
      }
      $total = array_sum($by_state);
      $is_conflict = ($kind === PhabricatorScimPlanEntry::KIND_CONFLICT);

      $name = idx(PhabricatorScimPlanEntry::getKindMap(), $kind, $kind);
      $row = array(
        id(new PHUIIconView())
          ->setIcon(PhabricatorScimPlanEntry::getKindIcon($kind)),
        phutil_tag(
          'a',
          array('href' => $this->getPlanURI($kind, null)),
          $name),
        $is_conflict
          ? $this->renderCount($total, PHUITagView::COLOR_RED)
          : pht('%s', new PhutilNumber($total)),
      );
      foreach ($states as $state) {
        if ($is_conflict) {
          $row[] = "\xE2\x80\x94";
          continue;
        }
        $count = (int)idx($by_state, $state, 0);
        $totals[$state] = idx($totals, $state, 0) + $count;
        if ($state === PhabricatorScimStageOp::STATE_FAILED) {
          $row[] = $this->renderCount($count, PHUITagView::COLOR_RED);
        } else {
          $row[] = pht('%s', new PhutilNumber($count));
        }
      }
      $row[] = PhabricatorScimPlanEntry::getKindDescription($kind);

      $rows[] = $row;
      $classes[] = $is_conflict ? 'highlighted' : null;
    }

    $table = id(new AphrontTableView($rows))
      ->setNoDataString(pht('The plan has no entries.'))
      ->setRowClasses($classes)
      ->setHeaders(
        array(
          null,
          pht('Kind'),
          pht('Entries'),
          pht('Pending'),
          pht('Applied'),
          pht('Failed'),
          pht('What It Does'),
        ))
      ->setColumnClasses(
        array(
          'center',
          'pri',
          'n',
          'n',
          'n',
          'n',
          'wide',
        ));

    return id(new PHUIObjectBoxView())
      ->setHeaderText(pht('Plan by Kind'))
      ->setBackground(PHUIObjectBoxView::BLUE_PROPERTY)
      ->setTable($table);
  }

  private function buildEntryBox(array $entries, $kind, $state) {
    $viewer = $this->getViewer();

    $phids = array();
    foreach ($entries as $entry) {
      $phids[] = $entry->getObjectPHID();
      $phids = array_merge(
        $phids,
        PhabricatorScimDetailsView::findPHIDs($entry->getDecodedDetails()));
    }
    $phids = array_values(array_unique(array_filter($phids)));

    // Only objects that exist now link; the rest (accounts and projects the
    // plan creates) do not exist yet.
    $handles = array();
    if ($phids) {
      foreach ($viewer->loadHandles($phids) as $phid => $handle) {
        if ($handle->isComplete()) {
          $handles[$phid] = $handle;
        }
      }
    }

    $details_view = id(new PhabricatorScimDetailsView())
      ->setHandles($handles)
      ->setPlannedNames(
        $this->loadPlannedNames(array_diff($phids, array_keys($handles))))
      ->setLabels(
        array(
          'reason' => pht('Reason'),
          'scimType' => pht('SCIM error'),
        ));

    $list = id(new PHUIObjectItemListView())
      ->setViewer($viewer)
      ->setFlush(true)
      ->setNoDataString(pht('No plan entries match.'));

    foreach ($entries as $entry) {
      $list->addItem($this->buildEntryItem($entry, $handles, $details_view));
    }

    $box = id(new PHUIObjectBoxView())
      ->setHeader($this->buildEntryHeader($kind, $state))
      ->setBackground(PHUIObjectBoxView::BLUE_PROPERTY)
      ->appendChild($this->buildFilterForm($kind, $state))
      ->setObjectList($list);

    return $box;
  }

  /**
   * Names of the accounts and projects the plan creates (they have no
   * handle yet), from the entries that create them: "@username", or the
   * project's name.
   */
  private function loadPlannedNames(array $phids) {
    if (!$phids) {
      return array();
    }

    $creates = id(new PhabricatorScimPlanEntryQuery())
      ->setViewer($this->getViewer())
      ->withObjectPHIDs(array_values($phids))
      ->withKinds(PhabricatorScimPlanEntry::getCreateKinds())
      ->execute();

    $names = array();
    foreach ($creates as $entry) {
      $details = $entry->getDecodedDetails();
      if (!is_array($details)) {
        continue;
      }
      $username = idx($details, 'username');
      $name = idx($details, 'name');
      if (is_string($username) && strlen($username)) {
        $names[$entry->getObjectPHID()] = '@'.$username;
      } else if (is_string($name) && strlen($name)) {
        $names[$entry->getObjectPHID()] = $name;
      }
    }

    return $names;
  }

  private function buildEntryHeader($kind, $state) {
    $filters = array();
    if ($kind === PhabricatorScimPlanEntry::FILTER_ATTENTION) {
      $filters[] = pht('needing attention');
    } else if ($kind !== null) {
      $filters[] = idx(PhabricatorScimPlanEntry::getKindMap(), $kind, $kind);
    }
    if ($state !== null) {
      $filters[] = PhabricatorScimStageOp::getStateName($state);
    }

    if ($filters) {
      $title = pht('Entries: %s', implode(', ', $filters));
    } else {
      $title = pht('Entries');
    }

    $header = id(new PHUIHeaderView())
      ->setHeader($title);

    if ($filters) {
      $header->addActionLink(
        id(new PHUIButtonView())
          ->setTag('a')
          ->setHref($this->getPlanURI(null, null))
          ->setIcon('fa-times')
          ->setText(pht('Show All')));
    }

    return $header;
  }

  private function buildFilterForm($kind, $state) {
    $kind_options = array(
      '' => pht('All Kinds'),
      PhabricatorScimPlanEntry::FILTER_ATTENTION => pht('Needs Attention'),
    ) + PhabricatorScimPlanEntry::getKindMap();

    $state_options = array(
      '' => pht('Any State'),
    ) + PhabricatorScimStageOp::getStateMap();

    return id(new AphrontFormView())
      ->setViewer($this->getViewer())
      ->setMethod('GET')
      ->setAction($this->getApplicationURI('plan/'))
      ->appendChild(
        id(new AphrontFormSelectControl())
          ->setLabel(pht('Kind'))
          ->setName('kind')
          ->setOptions($kind_options)
          ->setValue((string)$kind))
      ->appendChild(
        id(new AphrontFormSelectControl())
          ->setLabel(pht('Operation'))
          ->setName('state')
          ->setOptions($state_options)
          ->setValue((string)$state)
          ->setCaption(
            pht('Conflicts have no operation; a state filter hides them.')))
      ->appendChild(
        id(new AphrontFormSubmitControl())
          ->setValue(pht('Filter')));
  }

  private function buildEntryItem(
    PhabricatorScimPlanEntry $entry,
    array $handles,
    PhabricatorScimDetailsView $details_view) {

    $viewer = $this->getViewer();
    $kind = $entry->getKind();
    $op = $entry->getStageOp();
    $details = $entry->getDecodedDetails();
    if (!is_array($details)) {
      $details = array();
    }

    $item = id(new PHUIObjectItemView())
      ->setObjectName(pht('Entry %d', $entry->getID()))
      ->setHeader($entry->getSummary())
      ->setStatusIcon(
        PhabricatorScimPlanEntry::getKindIcon($kind),
        $entry->getKindName())
      ->addIcon(
        'none',
        phabricator_datetime($entry->getDateCreated(), $viewer));

    $item->addAttribute($entry->getKindName());

    if ($entry->isConflict()) {
      $item->addAttribute(
        id(new PHUITagView())
          ->setType(PHUITagView::TYPE_SHADE)
          ->setColor(PHUITagView::COLOR_RED)
          ->setIcon('fa-ban')
          ->setName(pht('Refused')));
      $request_line = trim(
        idx($details, 'method', '').' '.idx($details, 'path', '').' '.
        $entry->getStatus());
      $item->addAttribute(phutil_tag('tt', array(), $request_line));
      unset($details['method'], $details['path']);
      $item->setBarColor('red');
    } else {
      if ($op) {
        $op_state = $op->getState();
        $item->addAttribute(
          id(new PHUITagView())
            ->setType(PHUITagView::TYPE_SHADE)
            ->setColor(PhabricatorScimStageOp::getStateColor($op_state))
            ->setIcon(PhabricatorScimStageOp::getStateIcon($op_state))
            ->setName(PhabricatorScimStageOp::getStateName($op_state)));
        $item->addByline(
          pht(
            'Operation %d: %s',
            $op->getID(),
            $op->getOperationName()));
        $item->addByline(pht('Request %s', $op->getRequestID()));
        if ($op_state === PhabricatorScimStageOp::STATE_FAILED) {
          $item->setBarColor('red');
        }
        $applied = $op->getDateApplied();
        if ($applied && $op_state === PhabricatorScimStageOp::STATE_APPLIED) {
          $item->addIcon(
            'fa-check',
            pht('Applied %s', phabricator_datetime($applied, $viewer)));
        } else if ($applied) {
          $item->addIcon(
            'fa-times',
            pht('Tried %s', phabricator_datetime($applied, $viewer)));
        }
      }
      $item->addAttribute(
        phutil_tag(
          'tt',
          array(),
          pht('HTTP %d', $entry->getStatus())));
    }

    $item->addAttribute($this->renderObject($entry, $handles));

    if ($entry->needsAttention()) {
      $item->setEffect('highlighted');
      if (!$entry->isConflict()) {
        $item->setBarColor('orange');
      }
    }

    $rendered = $details_view->renderDetails($details);
    if ($rendered) {
      $item->appendChild($rendered);
    }

    if ($op && strlen((string)$op->getError())) {
      $item->appendChild(
        phutil_tag(
          'div',
          array(
            'class' => 'phui-object-item-details',
            'style' => 'padding: 0 8px 8px 8px; color: #c0392b;',
          ),
          array(
            phutil_tag('strong', array(), pht('Error')),
            ': ',
            $op->getError(),
          )));
    }

    return $item;
  }

  /**
   * The account or project the entry acts on: a link when it exists in
   * Phabricator, "New" when the plan creates it.
   */
  private function renderObject(
    PhabricatorScimPlanEntry $entry,
    array $handles) {

    $phid = $entry->getObjectPHID();
    if (!$phid) {
      return null;
    }

    $handle = idx($handles, $phid);
    if ($handle) {
      $type = $entry->getResourceType();
      if ($type === PhabricatorScimPlanEntry::RESOURCE_GROUP) {
        $icon = 'fa-briefcase';
      } else {
        $icon = 'fa-user';
      }
      return array(
        id(new PHUIIconView())->setIcon($icon),
        ' ',
        $handle->renderLink(),
      );
    }

    return id(new PHUITagView())
      ->setType(PHUITagView::TYPE_SHADE)
      ->setColor(PHUITagView::COLOR_GREEN)
      ->setSlimShady(true)
      ->setName(pht('New'));
  }

  private function getPlanURI($kind, $state) {
    $uri = new PhutilURI($this->getApplicationURI('plan/'));
    if ($kind !== null) {
      $uri->replaceQueryParam('kind', $kind);
    }
    if ($state !== null) {
      $uri->replaceQueryParam('state', $state);
    }
    return (string)$uri;
  }

}
