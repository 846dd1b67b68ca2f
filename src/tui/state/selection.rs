//! Which row is selected in each pane, what the in-memory filters leave visible, and paging
//! past the loaded rows.

use super::*;

/// Per-pane position: the selected row and its key, the first row loaded, and the filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PaneState {
    /// Selected row within the loaded rows.
    pub selected: usize,
    /// The selected row's key, so the selection follows the row when rows move.
    pub key: Option<Uuid>,
    /// The first row to load.
    pub offset: u64,
    /// The filter text.
    pub filter: String,
}

impl App {
    /// The current pane's position.
    pub fn pane_state(&self) -> &PaneState {
        &self.panes[self.pane.index()]
    }

    /// Rows of the current pane after its client-side filter (Connections and Mappings filter
    /// in memory: they are small; the others filter in the query).
    pub fn visible_connections(&self) -> Vec<&ConnectionRow> {
        let f = self.panes[Pane::Connections.index()].filter.to_lowercase();
        self.connections
            .iter()
            .filter(|c| f.is_empty() || c.connection.name.to_lowercase().contains(&f))
            .collect()
    }

    /// Mapping rows after the filter.
    pub fn visible_mappings(&self) -> Vec<&MappingRow> {
        let f = self.panes[Pane::Mappings.index()].filter.to_lowercase();
        self.mappings
            .iter()
            .filter(|m| {
                f.is_empty()
                    || m.mapping.pattern.to_lowercase().contains(&f)
                    || m.role.to_lowercase().contains(&f)
            })
            .collect()
    }

    /// How many rows the current pane has loaded (after in-memory filters).
    pub fn row_count(&self) -> usize {
        self.rows_in(self.pane)
    }

    /// How many rows a pane has loaded (after in-memory filters).
    pub(super) fn rows_in(&self, pane: Pane) -> usize {
        match pane {
            Pane::Connections => self.visible_connections().len(),
            Pane::Queue => self.queue.rows.len(),
            Pane::Failed => self.failed.rows.len(),
            Pane::Mappings => self.visible_mappings().len(),
            Pane::Users => self.users.rows.len(),
            Pane::Audit => self.audit.rows.len(),
        }
    }

    pub(super) fn row_key(&self, pane: Pane, i: usize) -> Option<Uuid> {
        match pane {
            Pane::Connections => self.visible_connections().get(i).map(|c| c.connection.id.0),
            Pane::Queue => self.queue.rows.get(i).map(|r| r.operation.id.0),
            Pane::Failed => self.failed.rows.get(i).map(FailedItem::key),
            Pane::Mappings => self.visible_mappings().get(i).map(|m| m.mapping.id.0),
            Pane::Users => self.users.rows.get(i).map(|u| u.id.0),
            Pane::Audit => self.audit.rows.get(i).map(|e| e.id.0),
        }
    }

    pub(super) fn index_of_key(&self, pane: Pane, key: Uuid) -> Option<usize> {
        (0..self.rows_in(pane)).find(|i| self.row_key(pane, *i) == Some(key))
    }

    /// The selected connection: the row in Connections, else the connection of the selected
    /// operation or exception.
    pub fn selected_connection(&self) -> Option<&ConnectionRow> {
        let sel = self.pane_state().selected;
        let id = match self.pane {
            Pane::Connections => return self.visible_connections().get(sel).copied(),
            Pane::Queue => self.queue.rows.get(sel).map(|r| r.operation.connection_id),
            Pane::Failed => match self.failed.rows.get(sel) {
                Some(FailedItem::Operation(r)) => Some(r.operation.connection_id),
                Some(FailedItem::Exception(e)) => e.connection_id,
                None => None,
            },
            _ => None,
        }?;
        self.connections.iter().find(|c| c.connection.id == id)
    }

    /// The selected operation, in a detail or in the Queue or Failed pane.
    pub fn selected_operation(&self) -> Option<&OperationRow> {
        if let Some(Overlay::Detail { detail, .. }) = self.overlays.last() {
            return match detail.as_ref() {
                Detail::Operation { row, .. } => Some(row),
                _ => None,
            };
        }
        let sel = self.pane_state().selected;
        match self.pane {
            Pane::Queue => self.queue.rows.get(sel),
            Pane::Failed => match self.failed.rows.get(sel) {
                Some(FailedItem::Operation(r)) => Some(r),
                _ => None,
            },
            _ => None,
        }
    }

    /// The selected exception, in a detail or in the Failed pane.
    pub fn selected_exception(&self) -> Option<&PolicyException> {
        if let Some(Overlay::Detail { detail, .. }) = self.overlays.last() {
            return match detail.as_ref() {
                Detail::Exception(e) => Some(e),
                _ => None,
            };
        }
        match (self.pane, self.failed.rows.get(self.pane_state().selected)) {
            (Pane::Failed, Some(FailedItem::Exception(e))) => Some(e),
            _ => None,
        }
    }

    pub(super) fn reselect(&mut self, pane: Pane) {
        let i = pane.index();
        let count = self.rows_in(pane);
        let found = self.panes[i].key.and_then(|k| self.index_of_key(pane, k));
        let selected = found.unwrap_or(self.panes[i].selected.min(count.saturating_sub(1)));
        self.panes[i].selected = selected;
        self.panes[i].key = self.row_key(pane, selected);
    }

    /// The connection the current pane's filter names (`conn:NAME`), if any.
    pub(super) fn filter_connection(&self) -> Option<ConnectionId> {
        let f = &self.pane_state().filter;
        let name = f.split_whitespace().find_map(|t| t.strip_prefix("conn:"))?;
        self.connections
            .iter()
            .find(|c| c.connection.name.eq_ignore_ascii_case(name))
            .map(|c| c.connection.id)
    }

    pub(super) fn detail_request(&self) -> Option<DetailRequest> {
        let sel = self.pane_state().selected;
        match self.pane {
            Pane::Connections => self
                .visible_connections()
                .get(sel)
                .map(|c| DetailRequest::Connection(c.connection.id)),
            Pane::Queue => self
                .queue
                .rows
                .get(sel)
                .map(|r| DetailRequest::Operation(r.operation.id)),
            Pane::Failed => self.failed.rows.get(sel).map(|i| match i {
                FailedItem::Exception(e) => DetailRequest::Exception(e.id),
                FailedItem::Operation(r) => DetailRequest::Operation(r.operation.id),
            }),
            Pane::Users => self.users.rows.get(sel).map(|u| DetailRequest::User(u.id)),
            Pane::Mappings | Pane::Audit => None,
        }
    }

    pub(super) fn switch(&mut self, index: usize) -> Vec<Effect> {
        let Some(pane) = Pane::ALL.get(index).copied() else {
            return Vec::new();
        };
        self.pane = pane;
        self.reload()
    }

    pub(super) fn move_selection(&mut self, by: i64) -> Vec<Effect> {
        let i = self.pane.index();
        let count = self.row_count();
        if count == 0 {
            return Vec::new();
        }
        let page = match self.pane {
            Pane::Queue => Some((self.queue.offset, self.queue.more)),
            Pane::Failed => Some((self.failed.offset, self.failed.more)),
            Pane::Users => Some((self.users.offset, self.users.more)),
            Pane::Audit => Some((self.audit.offset, self.audit.more)),
            _ => None,
        };
        let target = self.panes[i].selected as i64 + by;
        // Past the loaded rows: read the next or previous page around the selection.
        if let Some((offset, more)) = page {
            if target >= count as i64 && more {
                let step = u64::from(PAGE / 2);
                self.panes[i].offset = offset + step;
                self.panes[i].selected = (target as u64).saturating_sub(step) as usize;
                self.panes[i].key = None;
                return self.reload();
            }
            if target < 0 && offset > 0 {
                let step = u64::from(PAGE / 2).min(offset);
                self.panes[i].offset = offset - step;
                self.panes[i].selected = (target + step as i64).max(0) as usize;
                self.panes[i].key = None;
                return self.reload();
            }
        }
        let selected = target.clamp(0, count as i64 - 1) as usize;
        self.panes[i].selected = selected;
        self.panes[i].key = self.row_key(self.pane, selected);
        Vec::new()
    }
}
