<?php

final class PhabricatorScimStatusController extends PhabricatorScimController {

  public function handleRequest(AphrontRequest $request) {
    $viewer = $this->getViewer();
    $now = PhabricatorTime::getNow();

    $instances = id(new PhabricatorScimInstanceQuery())
      ->setViewer($viewer)
      ->execute();

    $live = array();
    foreach ($instances as $instance) {
      if ($instance->isLive($now)) {
        $live[] = $instance;
      }
    }

    $tokens = id(new PhabricatorScimTokenQuery())
      ->setViewer($viewer)
      ->withIsRevoked(false)
      ->execute();

    $notices = array();

    if (!$live) {
      $notices[] = id(new PHUIInfoView())
        ->setSeverity(PHUIInfoView::SEVERITY_ERROR)
        ->setTitle(pht('SCIM service not running'))
        ->appendChild(
          pht(
            'No replica has sent a heartbeat in the last minute. The '.
            'identity provider can not provision users or projects until '.
            'the SCIM service ("%s") is running against this database.',
            'phab-scim serve'));
    }

    $notices = array_merge($notices, $this->buildTokenNotices($tokens, $now));

    $rollout = PhabricatorScimRolloutQuery::loadCurrent($viewer);
    $op_counts = $this->loadStageOpCounts();
    if ($rollout &&
        $rollout->getPhase() !== PhabricatorScimRollout::PHASE_APPLIED) {
      $notices[] = id(new PHUIInfoView())
        ->setSeverity(PHUIInfoView::SEVERITY_NOTICE)
        ->setTitle(
          pht('Staged rollout: %s', $rollout->getPhaseName()))
        ->appendChild(
          array(
            $this->renderRolloutPhaseDescription(
              $rollout,
              $op_counts[PhabricatorScimStageOp::STATE_FAILED]),
            ' ',
            phutil_tag(
              'a',
              array('href' => $this->getApplicationURI('plan/')),
              pht('View Plan')),
          ));
    }

    $guard = $this->loadGuardState($instances, $now);
    if ($guard && $guard['refusing']) {
      $notices[] = id(new PHUIInfoView())
        ->setSeverity(PHUIInfoView::SEVERITY_ERROR)
        ->setTitle(pht('Deprovision guard is refusing'))
        ->appendChild(
          pht(
            'The service refuses to disable more established users: %s were '.
            'deprovisioned in the last %s seconds, and %s are allowed. Check the '.
            'identity provider\'s assignments; if the offboarding is '.
            'intended, raise "%s" or "%s", or shorten "%s".',
            new PhutilNumber($guard['deprovisions']),
            new PhutilNumber($guard['window']),
            new PhutilNumber($guard['limit']),
            'deprovision_guard_share',
            'deprovision_guard_min',
            'deprovision_guard_window_secs'));
    }

    $content = array_merge(
      $notices,
      array(
        $this->buildServiceBox($rollout, $op_counts),
        $this->buildGuardBox($guard),
        $this->buildActivityBox($now),
        $this->buildReplicaBox($instances, $now),
      ));

    return $this->newScimPage(pht('Status'), 'status', $content);
  }

  private function buildTokenNotices(array $tokens, $now) {
    $usable = array();
    $due = array();
    $expiring = array();
    foreach ($tokens as $token) {
      if (!$token->isUsable($now)) {
        continue;
      }
      $usable[] = $token;
      if ($token->isDueForRotation($now)) {
        $due[] = $token;
      }
      if ($token->getDateExpires() !== null) {
        $expiring[] = $token;
      }
    }

    $tokens_uri = $this->getApplicationURI('tokens/');
    $notices = array();

    if (!$usable) {
      $notices[] = id(new PHUIInfoView())
        ->setSeverity(PHUIInfoView::SEVERITY_WARNING)
        ->setTitle(pht('No usable token'))
        ->appendChild(
          phutil_tag(
            'a',
            array('href' => $tokens_uri),
            pht('Issue a token for the identity provider.')));
    }

    if ($due) {
      $items = array();
      foreach ($due as $token) {
        $items[] = pht(
          'Token %d ("%s") was issued %s and is older than the rotation '.
          'period of %s day(s).',
          $token->getID(),
          $token->getLabel(),
          phabricator_date($token->getDateCreated(), $this->getViewer()),
          new PhutilNumber(
            PhabricatorEnv::getEnvConfig('scim.token-rotation-days')));
      }
      $notices[] = id(new PHUIInfoView())
        ->setSeverity(PHUIInfoView::SEVERITY_WARNING)
        ->setTitle(pht('Tokens due for rotation'))
        ->setErrors($items);
    }

    if ($expiring) {
      $items = array();
      foreach ($expiring as $token) {
        $items[] = pht(
          'Token %d ("%s") was rotated and stops working on %s.',
          $token->getID(),
          $token->getLabel(),
          phabricator_datetime($token->getDateExpires(), $this->getViewer()));
      }
      $notices[] = id(new PHUIInfoView())
        ->setSeverity(PHUIInfoView::SEVERITY_NOTICE)
        ->setTitle(pht('Tokens in their grace period'))
        ->setErrors($items);
    }

    return $notices;
  }

  private function buildServiceBox($rollout, array $op_counts) {
    $viewer = $this->getViewer();

    $user_table = new PhabricatorScimUser();
    $conn = $user_table->establishConnection('r');

    // NOTE: Counted as Phabricator shows the accounts: a user the identity
    // provider set "active: false" is disabled, not active. "phab-scim status"
    // uses the same words and numbers.
    $users = queryfx_one(
      $conn,
      'SELECT
          SUM(IF(s.isDeprovisioned = 0 AND u.isDisabled = 0, 1, 0)) active,
          SUM(IF(s.isDeprovisioned = 0 AND u.isDisabled = 1, 1, 0)) disabled,
          SUM(IF(s.isDeprovisioned = 1, 1, 0)) deleted
        FROM %R s JOIN %R u ON u.phid = s.userPHID',
      $user_table,
      new PhabricatorUser());

    $drift_table = new PhabricatorScimDrift();
    $drift = queryfx_one(
      $drift_table->establishConnection('r'),
      'SELECT COUNT(*) N FROM %R',
      $drift_table);

    $group_table = new PhabricatorScimGroup();
    $groups = queryfx_one(
      $group_table->establishConnection('r'),
      'SELECT COUNT(*) N FROM %R',
      $group_table);

    $event_table = new PhabricatorScimEvent();
    $last_change = queryfx_one(
      $event_table->establishConnection('r'),
      'SELECT MAX(dateCreated) epoch FROM %R WHERE outcome IN (%Ls)',
      $event_table,
      array(
        PhabricatorScimEvent::OUTCOME_OK,
        PhabricatorScimEvent::OUTCOME_WARNING,
      ));

    $scim_uri = PhabricatorScimApplication::getScimEndpointURI();

    $properties = id(new PHUIPropertyListView())
      ->setViewer($viewer);

    $properties->addProperty(
      pht('SCIM Base URL'),
      phutil_tag('tt', array(), $scim_uri));

    $properties->addProperty(
      pht('Authentication'),
      pht(
        'HTTP header "Authorization: Bearer <token>", with a token from '.
        'the Tokens page.'));

    if ($rollout) {
      $properties->addProperty(
        pht('Rollout'),
        $this->renderRollout($rollout, $op_counts));
    }

    $properties->addProperty(
      pht('Managed Users'),
      pht(
        '%s active, %s disabled, %s deleted',
        new PhutilNumber((int)$users['active']),
        new PhutilNumber((int)$users['disabled']),
        new PhutilNumber((int)$users['deleted'])));

    $properties->addProperty(
      pht('Managed Projects'),
      pht('%s', new PhutilNumber((int)$groups['N'])));

    $drift_count = (int)$drift['N'];
    $drift_link = phutil_tag(
      'a',
      array('href' => $this->getApplicationURI('drift/')),
      pht('%s finding(s)', new PhutilNumber($drift_count)));
    if ($drift_count) {
      $drift_link = array(
        $this->renderCount($drift_count, PHUITagView::COLOR_ORANGE),
        ' ',
        $drift_link,
      );
    }
    $properties->addProperty(pht('Drift'), $drift_link);

    $last_epoch = (int)$last_change['epoch'];
    if ($last_epoch) {
      $last = array(
        phabricator_datetime($last_epoch, $viewer),
        ' (',
        $this->renderAge($last_epoch),
        ')',
      );
    } else {
      $last = phutil_tag('em', array(), pht('No change yet'));
    }
    $properties->addProperty(pht('Last Change'), $last);

    return id(new PHUIObjectBoxView())
      ->setHeaderText(pht('Service'))
      ->setBackground(PHUIObjectBoxView::BLUE_PROPERTY)
      ->appendChild($properties);
  }

  /**
   * The staged rollout's phase, with what is left to apply (or what failed)
   * and a link to the Plan page.
   */
  private function renderRollout(
    PhabricatorScimRollout $rollout,
    array $op_counts) {

    $pending = $op_counts[PhabricatorScimStageOp::STATE_STAGED];
    $failed = $op_counts[PhabricatorScimStageOp::STATE_FAILED];

    $parts = array();
    if ($rollout->getPhase() !== PhabricatorScimRollout::PHASE_APPLIED ||
        $pending) {
      $parts[] = pht(
        '%s pending plan operation(s)',
        new PhutilNumber($pending));
    }
    if ($failed) {
      $parts[] = pht('%s failed', new PhutilNumber($failed));
    }
    $parts[] = phutil_tag(
      'a',
      array('href' => $this->getApplicationURI('plan/')),
      pht('View Plan'));

    return array(
      $rollout->renderPhaseTag(),
      ' ',
      phutil_implode_html(', ', $parts),
    );
  }

  /**
   * The deprovision guard's state, as "phab-scim status" reports it, under the
   * settings the most recently seen running replica published with its
   * heartbeat (the service's configuration is not Phabricator's). Null when no
   * running replica published them.
   */
  private function loadGuardState(array $instances, $now) {
    $source = null;
    foreach ($instances as $instance) {
      if (!$instance->isLive($now) || $instance->getGuardShare() === null) {
        continue;
      }
      if (!$source ||
          $instance->getDateModified() > $source->getDateModified()) {
        $source = $instance;
      }
    }
    if (!$source) {
      return null;
    }

    $share = (double)$source->getGuardShare();
    $min = (int)$source->getGuardMin();
    $window = (int)$source->getGuardWindow();
    $since = $now - $window;

    $user_table = new PhabricatorScimUser();
    $conn = $user_table->establishConnection('r');

    // NOTE: Counted as the service's guard counts (Provisioner::guard_burst):
    // an account the service created and deprovisioned within the window of
    // its creation is an identity provider's test run, not an offboarding.
    $deprovisions = (int)idx(
      queryfx_one(
        $conn,
        'SELECT COUNT(*) N FROM %R WHERE dateDeprovisioned >= %d
          AND (dateAccountCreated IS NULL
            OR dateDeprovisioned >= dateAccountCreated + %d)',
        $user_table,
        $since,
        $window),
      'N');
    $active = (int)idx(
      queryfx_one(
        $conn,
        'SELECT COUNT(*) N FROM %R s JOIN %R u ON u.phid = s.userPHID
          WHERE s.isDeprovisioned = 0 AND u.isDisabled = 0
            AND u.isSystemAgent = 0',
        $user_table,
        new PhabricatorUser()),
      'N');
    $managed = $active + $deprovisions;
    $limit = max($min, (int)floor($share * $managed));
    $enabled = ($share < 1);

    $event_table = new PhabricatorScimEvent();
    $refusals = queryfx_one(
      $event_table->establishConnection('r'),
      'SELECT COUNT(*) N, MIN(dateCreated) first FROM %R
        WHERE dateCreated >= %d AND outcome = %s AND status = 429
          AND summary LIKE %>',
      $event_table,
      $since,
      PhabricatorScimEvent::OUTCOME_ERROR,
      'refusing to deprovision');

    $refusing = ($enabled && $deprovisions >= $limit);

    return array(
      'enabled' => $enabled,
      'share' => $share,
      'min' => $min,
      'window' => $window,
      'deprovisions' => $deprovisions,
      'managed' => $managed,
      'limit' => $limit,
      'refusals' => (int)$refusals['N'],
      'refusing' => $refusing,
      'since' => $refusing ? (int)$refusals['first'] : 0,
    );
  }

  private function buildGuardBox($guard) {
    $viewer = $this->getViewer();
    $properties = id(new PHUIPropertyListView())
      ->setViewer($viewer);

    if (!$guard) {
      $properties->addProperty(
        pht('State'),
        phutil_tag(
          'em',
          array(),
          pht('Unknown: no running replica has published its settings.')));
    } else if (!$guard['enabled']) {
      $properties->addProperty(
        pht('State'),
        pht('Off ("%s" is %s)', 'deprovision_guard_share', $guard['share']));
    } else {
      if ($guard['refusing']) {
        $state = id(new PHUITagView())
          ->setType(PHUITagView::TYPE_SHADE)
          ->setColor(PHUITagView::COLOR_RED)
          ->setIcon('fa-ban')
          ->setName(pht('Refusing'));
      } else {
        $state = id(new PHUITagView())
          ->setType(PHUITagView::TYPE_SHADE)
          ->setColor(PHUITagView::COLOR_GREEN)
          ->setIcon('fa-check')
          ->setName(pht('Allowing'));
      }
      $properties->addProperty(pht('State'), $state);

      $properties->addProperty(
        pht('Deprovisions'),
        pht(
          '%s of %s allowed in the last %s seconds ("%s"; established users: '.
          'users the service created within the window do not count)',
          new PhutilNumber($guard['deprovisions']),
          new PhutilNumber($guard['limit']),
          new PhutilNumber($guard['window']),
          'deprovision_guard_window_secs'));

      $properties->addProperty(
        pht('Limit'),
        pht(
          '%s%% ("%s") of %s managed users, at least %s ("%s")',
          round($guard['share'] * 100),
          'deprovision_guard_share',
          new PhutilNumber($guard['managed']),
          new PhutilNumber($guard['min']),
          'deprovision_guard_min'));

      if ($guard['since']) {
        $since = array(
          phabricator_datetime($guard['since'], $viewer),
          ' (',
          $this->renderAge($guard['since']),
          '), ',
          pht('%s refused', new PhutilNumber($guard['refusals'])),
        );
      } else if ($guard['refusing']) {
        $since = pht('No refusal yet; the next deprovision is refused.');
      } else {
        $since = phutil_tag('em', array(), pht('Not refusing'));
      }
      $properties->addProperty(pht('Refusing Since'), $since);
    }

    return id(new PHUIObjectBoxView())
      ->setHeaderText(pht('Deprovision Guard'))
      ->setBackground(PHUIObjectBoxView::BLUE_PROPERTY)
      ->appendChild($properties);
  }

  private function buildActivityBox($now) {
    $event_table = new PhabricatorScimEvent();
    $conn = $event_table->establishConnection('r');

    $periods = array(
      pht('Last Hour') => phutil_units('1 hour in seconds'),
      pht('Last Day') => phutil_units('1 day in seconds'),
    );

    $log_uri = $this->getApplicationURI('log/');

    $rows = array();
    foreach ($periods as $name => $seconds) {
      $counts = queryfx_one(
        $conn,
        'SELECT
            COUNT(*) total,
            SUM(IF(outcome = %s, 1, 0)) warnings,
            SUM(IF(outcome = %s, 1, 0)) errors
          FROM %R WHERE dateCreated >= %d',
        PhabricatorScimEvent::OUTCOME_WARNING,
        PhabricatorScimEvent::OUTCOME_ERROR,
        $event_table,
        $now - $seconds);

      $errors = (int)$counts['errors'];
      $warnings = (int)$counts['warnings'];

      $rows[] = array(
        $name,
        pht('%s', new PhutilNumber((int)$counts['total'])),
        $this->renderCount($warnings, PHUITagView::COLOR_ORANGE),
        $this->renderCount($errors, PHUITagView::COLOR_RED),
        null,
      );
    }

    $table = id(new AphrontTableView($rows))
      ->setHeaders(
        array(
          pht('Period'),
          pht('Operations'),
          pht('Warnings'),
          pht('Errors'),
          null,
        ))
      ->setColumnClasses(
        array(
          'pri',
          'n',
          'n',
          'n',
          'wide',
        ));

    $header = id(new PHUIHeaderView())
      ->setHeader(pht('Activity'))
      ->addActionLink(
        id(new PHUIButtonView())
          ->setTag('a')
          ->setHref($log_uri)
          ->setIcon('fa-list-ul')
          ->setText(pht('View Sync Log')));

    return id(new PHUIObjectBoxView())
      ->setHeader($header)
      ->setBackground(PHUIObjectBoxView::BLUE_PROPERTY)
      ->setTable($table);
  }

  private function buildReplicaBox(array $instances, $now) {
    // Most recently seen first.
    $instances = msort($instances, 'getDateModified');
    $instances = array_reverse($instances);

    $rows = array();
    foreach ($instances as $instance) {
      if ($instance->isLive($now)) {
        $state = id(new PHUITagView())
          ->setType(PHUITagView::TYPE_SHADE)
          ->setColor(PHUITagView::COLOR_GREEN)
          ->setIcon('fa-heartbeat')
          ->setName(pht('Running'));
      } else if ($instance->isStopped()) {
        $state = id(new PHUITagView())
          ->setType(PHUITagView::TYPE_SHADE)
          ->setColor(PHUITagView::COLOR_GREY)
          ->setIcon('fa-stop')
          ->setName(pht('Stopped'));
      } else {
        $state = id(new PHUITagView())
          ->setType(PHUITagView::TYPE_SHADE)
          ->setColor(PHUITagView::COLOR_ORANGE)
          ->setIcon('fa-question-circle')
          ->setName(pht('Not Seen'));
      }

      $rows[] = array(
        $state,
        $instance->getHostname(),
        $instance->getInstanceKey(),
        $instance->getVersion(),
        phabricator_datetime($instance->getDateStarted(), $this->getViewer()),
        $this->renderAge($instance->getDateModified()),
      );
    }

    $table = id(new AphrontTableView($rows))
      ->setNoDataString(
        pht('No SCIM service replica has ever started on this database.'))
      ->setHeaders(
        array(
          pht('State'),
          pht('Host'),
          pht('Instance'),
          pht('Version'),
          pht('Started'),
          pht('Last Heartbeat'),
        ))
      ->setColumnClasses(
        array(
          null,
          'pri',
          null,
          null,
          null,
          'wide',
        ));

    return id(new PHUIObjectBoxView())
      ->setHeaderText(pht('Replicas'))
      ->setBackground(PHUIObjectBoxView::BLUE_PROPERTY)
      ->setTable($table);
  }

}
