//! Pagination of lists, the one way every list pages: `fetch` reads the page
//! asked for (`?page=` as typed) of an ordered query with sea-orm's
//! paginator, and its `Pager` (shown by `templates/pagination.html`) links
//! to the neighbouring pages.

use sea_orm::{ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, Select};
use serde::Serialize;

/// The page `requested` (`?page=` as typed; 1 when missing or nonsense) of
/// `query`, which must be ordered: its rows, and the pager under them linking
/// to `path` with the list's other query `params`.
pub async fn fetch<E>(
    db: &impl ConnectionTrait,
    query: Select<E>,
    requested: &str,
    path: &str,
    params: &[(&str, &str)],
) -> Result<(Vec<E::Model>, Pager), DbErr>
where
    E: EntityTrait,
    E::Model: Sync,
{
    let page = Pager::requested(requested);
    let paginator = query.paginate(db, PER_PAGE);
    let total = paginator.num_items().await?;
    let rows = paginator.fetch_page(page - 1).await?;
    let pager = Pager::new(path, params, page, total, rows.len() as u64);
    Ok((rows, pager))
}

/// Rows per page on every list.
const PER_PAGE: u64 = 25;

/// Page links for a list, keeping its other query parameters.
#[derive(Debug, Serialize)]
pub struct Pager {
    pub page: u64,
    pub pages: u64,
    pub total: u64,
    pub first_item: u64,
    pub last_item: u64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// The page asked for: `?page=` as typed, 1 when missing or nonsense.
    fn requested(page: &str) -> u64 {
        page.trim().parse::<u64>().unwrap_or(1).clamp(1, 1_000_000)
    }

    fn offset(page: u64) -> u64 {
        (page.max(1) - 1) * PER_PAGE
    }

    /// `params` are the list's other query parameters (empty ones are left out).
    fn new(path: &str, params: &[(&str, &str)], page: u64, total: u64, shown: u64) -> Self {
        let pages = total.div_ceil(PER_PAGE).max(1);
        let link = |page: u64| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (key, value) in params.iter().filter(|(_, value)| !value.is_empty()) {
                query.append_pair(key, value);
            }
            if page > 1 {
                query.append_pair("page", &page.to_string());
            }
            match query.finish() {
                query if query.is_empty() => path.to_owned(),
                query => format!("{path}?{query}"),
            }
        };
        let first_item = if shown == 0 {
            0
        } else {
            Self::offset(page) + 1
        };
        Self {
            page,
            pages,
            total,
            first_item,
            last_item: Self::offset(page) + shown,
            prev: (page > 1).then(|| link((page - 1).min(pages))),
            next: (page < pages).then(|| link(page + 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_link_to_their_neighbours_and_keep_the_filters() {
        let pager = Pager::new(
            "/staff/invites",
            &[("q", "fred & co"), ("state", "")],
            2,
            60,
            25,
        );
        assert_eq!(pager.pages, 3);
        assert_eq!((pager.first_item, pager.last_item), (26, 50));
        assert_eq!(pager.prev.as_deref(), Some("/staff/invites?q=fred+%26+co"));
        assert_eq!(
            pager.next.as_deref(),
            Some("/staff/invites?q=fred+%26+co&page=3")
        );
        let empty = Pager::new("/staff/mail", &[], 1, 0, 0);
        assert_eq!((empty.pages, empty.first_item), (1, 0));
        assert!(empty.prev.is_none() && empty.next.is_none());
        assert_eq!(Pager::requested("x"), 1);
        assert_eq!(Pager::requested("0"), 1);
        assert_eq!(Pager::requested("7"), 7);
    }
}
