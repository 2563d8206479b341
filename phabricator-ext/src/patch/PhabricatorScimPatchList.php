<?php

/**
 * Exposes the service's own storage patches (`schema/scim/` at the root of
 * the phab-scim repository) to `bin/storage upgrade`.
 *
 * The Rust service (`phab-scim migrate`) applies the same files and records
 * them in `patch_status` under the same keys (`phabscim:db.scim`,
 * `phabscim:<file name>`), so whichever runs first, the other sees the
 * patches as applied. Keep the namespace and keys stable.
 */
final class PhabricatorScimPatchList extends PhabricatorSQLPatchList {

  public function getNamespace() {
    return 'phabscim';
  }

  public function getPatches() {
    $patches = array(
      'db.scim' => array(
        'type' => 'db',
        'name' => 'scim',
        'after' => array(),
      ),
    );

    return $patches + $this->buildPatchesFromDirectory(
      self::getPatchDirectory());
  }

  public static function getPatchDirectory() {
    // NOTE: The library root is "phabricator-ext/" of the phab-scim
    // repository. The patches are shared with the Rust service and live
    // beside it, in "schema/scim/".
    $root = phutil_get_library_root('phabricator-scim');
    return dirname($root).'/schema/scim';
  }

}
