<?php

/**
 * Links to the users and projects the sync log and drift findings name.
 *
 * Users link to their profile (`/p/<username>/`), projects to
 * `/project/view/<id>/`. Objects the viewer can not load (for example,
 * destroyed ones) render as their bare PHID.
 */
final class PhabricatorScimObjectLinks extends Phobject {

  private $viewer;
  private $objects = array();

  public function setViewer(PhabricatorUser $viewer) {
    $this->viewer = $viewer;
    return $this;
  }

  public function loadObjects(array $phids) {
    $phids = array_values(array_unique(array_filter($phids)));
    if (!$phids) {
      return $this;
    }

    $objects = id(new PhabricatorObjectQuery())
      ->setViewer($this->viewer)
      ->withPHIDs($phids)
      ->execute();

    $this->objects += mpull($objects, null, 'getPHID');

    return $this;
  }

  public function getObject($phid) {
    return idx($this->objects, $phid);
  }

  public static function getObjectURI($object) {
    if ($object instanceof PhabricatorUser) {
      return '/p/'.$object->getUsername().'/';
    }
    if ($object instanceof PhabricatorProject) {
      return '/project/view/'.$object->getID().'/';
    }
    return null;
  }

  public static function getObjectName($object) {
    if ($object instanceof PhabricatorUser) {
      return $object->getUsername();
    }
    if ($object instanceof PhabricatorProject) {
      return $object->getName();
    }
    return null;
  }

  public function renderLink($phid) {
    if (!$phid) {
      return null;
    }

    $object = $this->getObject($phid);
    $uri = self::getObjectURI($object);
    if (!$uri) {
      return $phid;
    }

    if ($object instanceof PhabricatorUser) {
      $icon = 'fa-user';
    } else {
      $icon = 'fa-briefcase';
    }

    return phutil_tag(
      'a',
      array(
        'href' => $uri,
      ),
      array(
        id(new PHUIIconView())->setIcon($icon),
        ' ',
        self::getObjectName($object),
      ));
  }

}
