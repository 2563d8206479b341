<?php

/**
 * Base class for the tables of `<namespace>_scim`.
 *
 * The tables are created by the patches in `schema/scim/` (see
 * @{class:PhabricatorScimPatchList}); the column and key schemata declared by
 * the subclasses must match those patches exactly, so Config > Database
 * Status has nothing to report. Every row is visible to administrators only.
 */
abstract class PhabricatorScimDAO
  extends PhabricatorLiskDAO
  implements PhabricatorPolicyInterface {

  public function getApplicationName() {
    return 'scim';
  }

  /**
   * Decode a JSON column written by the Rust service without trusting it.
   *
   * @param string|null Raw column value.
   * @return map<string, wild> Decoded object, or an empty map.
   */
  final protected function decodeJSONColumn($value) {
    if (!strlen((string)$value)) {
      return array();
    }

    try {
      $decoded = phutil_json_decode($value);
    } catch (PhutilJSONParserException $ex) {
      return array();
    }

    return $decoded;
  }


/* -(  PhabricatorPolicyInterface  )----------------------------------------- */


  public function getCapabilities() {
    return array(
      PhabricatorPolicyCapability::CAN_VIEW,
      PhabricatorPolicyCapability::CAN_EDIT,
    );
  }

  public function getPolicy($capability) {
    return PhabricatorPolicies::POLICY_ADMIN;
  }

  public function hasAutomaticCapability($capability, PhabricatorUser $viewer) {
    return false;
  }

}
