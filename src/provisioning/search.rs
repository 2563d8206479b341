//! `POST /.search` at the service root (RFC 7644 §3.4.3): one query over Users and Groups.
//!
//! The filter is resolved once per resource type. A resource type on which the filter names an
//! attribute it does not define contributes no resources (the filter cannot be true for it);
//! when it resolves for neither, the User error is the answer (400 invalidFilter). Results are
//! Users, then Groups, each in creation order, and `startIndex`/`count` page over that
//! concatenation: the order is stable across pages (RFC 7644 §3.4.2.4). `sortBy` is refused at
//! the root: a sort across two tables would need a merge of unbounded prefixes.

use tracing::instrument;

use super::groups::StoredGroup;
use super::users::ReadUser;
use super::{ProvisionError, Provisioner, Result};
use crate::scim::ScimError;
use crate::scim::filter::parse_filter;
use crate::scim::list::ListParams;
use crate::scim::query::{self, GroupFilter, UserFilter};

/// One page of a root search.
#[derive(Debug, Default)]
pub struct RootPage {
    /// Matches over both resource types.
    pub total: u64,
    /// The 1-based index of the first result.
    pub start_index: u64,
    /// The users of the page (they come first).
    pub users: Vec<ReadUser>,
    /// The groups of the page.
    pub groups: Vec<StoredGroup>,
}

impl Provisioner {
    /// POST /.search.
    #[instrument(skip_all)]
    pub async fn search_all(
        &self,
        params: &ListParams,
        want_user_groups: bool,
    ) -> Result<RootPage> {
        if params
            .sort_by
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty())
        {
            return Err(ProvisionError::InvalidValue(
                "sortBy is not supported on a search at the root; search /Users/.search or /Groups/.search"
                    .into(),
            ));
        }
        let (users_filter, groups_filter) = match params
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            None => (Some(UserFilter::All), Some(GroupFilter::All)),
            Some(f) => {
                let parsed = parse_filter(f)
                    .map_err(|e| ScimError::invalid_filter(format!("filter: {e}")))?;
                match (query::resolve_user(&parsed), query::resolve_group(&parsed)) {
                    (Err(e), Err(_)) => return Err(e.into()),
                    (u, g) => (u.ok(), g.ok()),
                }
            }
        };
        let page = params.page(100, u64::from(self.cfg.max_results))?;
        let offset = page.start_index - 1;
        let mut out = RootPage {
            start_index: page.start_index,
            ..RootPage::default()
        };
        let mut users_total = 0;
        if let Some(f) = &users_filter {
            let (total, users) = self
                .query_users(f, None, false, offset, page.count, want_user_groups)
                .await?;
            users_total = total;
            out.users = users;
        }
        if let Some(f) = &groups_filter {
            // Groups continue where the users end.
            let left = page.count.saturating_sub(out.users.len() as u64);
            let group_offset = offset.saturating_sub(users_total);
            let (total, groups) = self
                .query_groups(f, None, false, group_offset, left)
                .await?;
            out.total = users_total.saturating_add(total);
            out.groups = groups;
        } else {
            out.total = users_total;
        }
        Ok(out)
    }
}
