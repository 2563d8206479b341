<?php

/**
 * The content source of transactions phab-scim writes (`{"source":"scim"}`),
 * so their timelines read "via SCIM" rather than "Unknown".
 */
final class PhabricatorScimContentSource
  extends PhabricatorContentSource {

  const SOURCECONST = 'scim';

  public function getSourceName() {
    return pht('SCIM');
  }

  public function getSourceDescription() {
    return pht('Changes pushed by the identity provider through SCIM.');
  }

}
