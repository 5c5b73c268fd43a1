//! Turning the store's rows into the API's types (which live in `shoal-api-types`,
//! so a plain `From` would be an orphan impl).

/// `row.view()`: the API's view of a stored row.
pub trait View<T> {
    fn view(self) -> T;
}
