//! Statements over many rows at once. The write-behind applies a batch in one
//! transaction; one statement per row would cost a round trip each (on
//! Postgres the server's send and the client's receive dominate at load), so
//! a batch's rows of one kind go in a few multi-row statements instead.
//!
//! Each row count makes a different statement, and each connection prepares
//! and caches every statement it runs. Rows are therefore sent in chunks of
//! [`MAX_ROWS`], the remainder in powers of two: at most eight shapes of any
//! statement exist.

/// Most rows in one statement: 64 rows of the widest statement (the call
/// upsert, 19 values a row) stay far inside both backends' parameter limits.
pub const MAX_ROWS: usize = 64;

/// `items` in statement-sized chunks: whole [`MAX_ROWS`] first, then the
/// rest by powers of two, largest first.
pub fn chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = if rest.len() >= MAX_ROWS {
            MAX_ROWS
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// `rows` copies of `row`, comma-separated, each `?` in it numbered on from
/// `$1`: `values(2, "(?, ?)")` is `($1, $2), ($3, $4)`.
pub fn values(rows: usize, row: &str) -> String {
    let mut sql = String::with_capacity(rows * (row.len() + 16));
    let mut n = 0;
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        for c in row.chars() {
            if c == '?' {
                n += 1;
                sql.push('$');
                sql.push_str(&n.to_string());
            } else {
                sql.push(c);
            }
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_numbered_on_from_the_first_placeholder() {
        assert_eq!(values(1, "(?)"), "($1)");
        assert_eq!(
            values(3, "(?, COALESCE(?, 'x'))"),
            "($1, COALESCE($2, 'x')), ($3, COALESCE($4, 'x')), ($5, COALESCE($6, 'x'))"
        );
    }

    #[test]
    fn chunks_cover_every_item_in_order_in_at_most_eight_shapes() {
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..=300_usize {
            let items: Vec<usize> = (0..n).collect();
            let parts: Vec<&[usize]> = chunks(&items).collect();
            assert_eq!(parts.concat(), items, "{n} items");
            for p in &parts {
                assert!(
                    p.len() == MAX_ROWS || p.len().is_power_of_two(),
                    "{}",
                    p.len()
                );
                shapes.insert(p.len());
            }
            // Full chunks, then at most one of each smaller power of two.
            let small: Vec<usize> = parts
                .iter()
                .map(|p| p.len())
                .filter(|&l| l < MAX_ROWS)
                .collect();
            assert!(small.windows(2).all(|w| w[0] > w[1]), "{n}: {small:?}");
        }
        assert_eq!(
            shapes.into_iter().collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 64]
        );
    }
}
