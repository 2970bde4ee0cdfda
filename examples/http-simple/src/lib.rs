#![doc = include_str!("../README.md")]

use std::collections::BTreeMap;
use std::sync::Mutex;

use kontiki_generated::http_simple::http_simple::{
    CreateItemError, GetItemError, HealthError, HttpSimple, HttpSimpleServer, ListItemsError,
};
use kontiki_generated::http_simple::{HelloResponse, Item, NewItem, Order};
use kontiki_rt::{Context, Service};

/// The description `--help` prints.
pub const DESCRIPTION: &str = "Example Kontiki service: a small HTTP API with Swagger UI.";

/// Items kept in memory (lost at restart).
#[derive(Debug, Default)]
pub struct Items {
    items: Mutex<BTreeMap<u64, Item>>,
}

impl Items {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Item>> {
        // A handler that panicked while holding the lock left a consistent map (every change
        // is a single insert), so the data stays usable.
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl HttpSimple for Items {
    async fn health(&self, _ctx: Context) -> Result<HelloResponse, HealthError> {
        Ok(HelloResponse {
            message: "ok".to_owned(),
        })
    }

    async fn create_item(&self, _ctx: Context, body: NewItem) -> Result<Item, CreateItemError> {
        let mut items = self.lock();
        if items.values().any(|i| i.name == body.name) {
            tracing::info!("POST /items {:?} -> 409 CONFLICT", body.name);
            return Err(CreateItemError::conflict());
        }
        let id = items.keys().next_back().map_or(1, |last| last + 1);
        let item = Item {
            id,
            name: body.name,
            qty: body.qty,
        };
        items.insert(id, item.clone());
        tracing::info!("POST /items {:?} -> 201 item {id}", item.name);
        Ok(item)
    }

    async fn get_item(&self, _ctx: Context, id: u64, _deleted: bool) -> Result<Item, GetItemError> {
        // Items are never deleted here, so `deleted` changes nothing.
        self.lock()
            .get(&id)
            .cloned()
            .ok_or_else(GetItemError::not_found)
    }

    async fn list_items(
        &self,
        _ctx: Context,
        owner: String,
        limit: u32,
        order: Order,
        cursor: Option<String>,
    ) -> Result<Vec<Item>, ListItemsError> {
        // One owner in this example: every owner sees every item. The cursor is the last id
        // seen; listing goes on after it.
        let after: Option<u64> = cursor.as_deref().and_then(|c| c.parse().ok());
        let items = self.lock();
        let ids: Box<dyn Iterator<Item = &Item>> = match order {
            Order::Asc => Box::new(items.values().filter(|i| after.is_none_or(|a| i.id > a))),
            Order::Desc => Box::new(
                items
                    .values()
                    .rev()
                    .filter(|i| after.is_none_or(|a| i.id < a)),
            ),
        };
        let page: Vec<Item> = ids.take(limit as usize).cloned().collect();
        tracing::info!("GET /owners/{owner}/items -> {} items", page.len());
        Ok(page)
    }
}

/// The http-simple service, ready for [`kontiki_rt::cli::run`] or [`Service::start`].
pub fn service() -> kontiki_rt::Result<Service> {
    HttpSimpleServer::new(Items::default())
        .service_builder()
        .build()
}
