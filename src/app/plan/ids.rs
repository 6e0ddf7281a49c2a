//! The ids of the patients `plan` lists, in file order, one after another in one string: a
//! million patients' ids are then one allocation instead of a million (each made on the
//! collecting thread while the others read), and the formatting threads, which look an id up
//! for every send, find it in a few megabytes instead of scattered over the heap.

/// Patient ids by their number in the plan (their place among the patients with sends).
#[derive(Debug, Default)]
pub(super) struct PatientIds {
    text: String,
    /// Where each id ends in `text`; it starts where the one before it ends.
    ends: Vec<usize>,
}

impl PatientIds {
    /// Adds `id` as the next patient.
    pub(super) fn push(&mut self, id: &str) {
        self.text.push_str(id);
        self.ends.push(self.text.len());
    }

    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The id of patient `index` (which must be below [`Self::len`]).
    pub(super) fn get(&self, index: usize) -> &str {
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1],
        };
        &self.text[start..self.ends[index]]
    }
}

impl<'a> FromIterator<&'a str> for PatientIds {
    fn from_iter<T: IntoIterator<Item = &'a str>>(ids: T) -> Self {
        let mut all = PatientIds::default();
        for id in ids {
            all.push(id);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each id comes back as it went in: empty ones, Japanese, ids that would run together.
    #[test]
    fn each_id_comes_back_as_it_went_in() {
        let given = ["P1", "", "患者２", "", "P1P1", "a\"\\\n"];
        let ids: PatientIds = given.iter().copied().collect();
        assert_eq!(ids.len(), given.len());
        for (index, id) in given.iter().enumerate() {
            assert_eq!(ids.get(index), *id, "{index}");
        }
    }
}
