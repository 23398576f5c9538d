package controllers

import (
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// deletesOnly passes only delete events. The controller writes its Secrets
// itself and needs no event for that; it must learn when someone else
// deletes one (a consumed reveal, a hash deleted by hand).
type deletesOnly struct{ predicate.Funcs }

func (deletesOnly) Create(event.CreateEvent) bool   { return false }
func (deletesOnly) Update(event.UpdateEvent) bool   { return false }
func (deletesOnly) Delete(event.DeleteEvent) bool   { return true }
func (deletesOnly) Generic(event.GenericEvent) bool { return false }
