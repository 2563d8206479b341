<?php

/**
 * The "details" of a sync log event or a plan entry (a JSON object the
 * service writes) as readable lines: "old -> new" for a change, handles for
 * PHIDs, counts and handles for a membership change, what a deactivation
 * revoked; keys it does not know as "key: value".
 */
final class PhabricatorScimDetailsView extends Phobject {

  private $handles = array();
  private $labels = array();
  private $plannedNames = array();

  /**
   * @param array<phid, PhabricatorObjectHandle> Handles of the PHIDs the
   *   details name (see findPHIDs()); PHIDs without one render as text.
   */
  public function setHandles($handles) {
    $this->handles = $handles;
    return $this;
  }

  /**
   * @param map<phid, string> Names of objects that do not exist yet (a
   *   staged plan creates them), to show instead of their bare PHID.
   */
  public function setPlannedNames(array $names) {
    $this->plannedNames = $names;
    return $this;
  }

  /**
   * @param map<string, string> Labels for keys, over the built-in ones.
   */
  public function setLabels(array $labels) {
    $this->labels = $labels;
    return $this;
  }

  /**
   * Every PHID named anywhere in a decoded "details" value (member ids, a
   * login provider), so that it renders as a handle instead of bare text.
   */
  public static function findPHIDs($value) {
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


  /**
   * @param wild Decoded "details" (a map; anything else renders nothing).
   * @return wild|null Rendered lines, or null when there is nothing to show.
   */
  public function renderDetails($details) {
    if (!$details || !is_array($details)) {
      return null;
    }

    // NOTE: The service never writes secrets into "details"; it is a
    // structured diff and notes such as what a 200 response hid.
    $handles = $this->handles;
    $lines = array();
    foreach ($details as $key => $value) {
      $lines[] = phutil_tag(
        'div',
        array(),
        array(
          phutil_tag('strong', array(), $this->getDetailLabel($key)),
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

  private function getDetailLabel($key) {
    $labels = $this->labels + array(
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
      'usernameTaken' => pht('Derived username taken'),
      'matchedBy' => pht('Matched by'),
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
    if (!$values) {
      return phutil_tag('em', array(), pht('none'));
    }
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
    if (is_string($value) && isset($this->plannedNames[$value])) {
      return pht('%s (new)', $this->plannedNames[$value]);
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
